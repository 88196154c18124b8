package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"time"
)

// Bounds of an unpacked build context: a small compressed body must not fill
// the node's disk.
const (
	maxContextBytes   = 8 << 30
	maxContextEntries = 1 << 20
)

// extractContext unpacks a build context, a tar stream (plain or gzip), into
// dir. Every name is confined to dir: absolute names, ".." and symbolic links
// cannot lead out of it (os.Root refuses them). Regular files, directories,
// symbolic and hard links are kept with their modes and times; devices and
// other special files are skipped; owners are not kept (COPY sets its own).
func extractContext(r io.Reader, dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	br := bufio.NewReader(r)
	var in io.Reader = br
	if magic, _ := br.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("gzip: %w", err)
		}
		defer gz.Close()
		in = gz
	}
	tr := tar.NewReader(in)
	type dirTimes struct {
		name string
		mod  time.Time
	}
	var dirs []dirTimes
	var total int64
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("not a tar archive: %w", err)
		}
		if n >= maxContextEntries {
			return fmt.Errorf("more than %d entries", maxContextEntries)
		}
		name := path.Clean("/" + hdr.Name)[1:]
		if name == "" {
			continue
		}
		if total += hdr.Size; total > maxContextBytes {
			return fmt.Errorf("it unpacks to more than %d bytes", int64(maxContextBytes))
		}
		if err := extractEntry(root, tr, hdr, name); err != nil {
			return fmt.Errorf("%s: %w", hdr.Name, err)
		}
		if hdr.Typeflag == tar.TypeDir {
			dirs = append(dirs, dirTimes{name, hdr.ModTime})
		}
	}
	// Directory times last: their contents changed them.
	for _, d := range slices.Backward(dirs) {
		if err := root.Chtimes(d.name, d.mod, d.mod); err != nil {
			return fmt.Errorf("%s: %w", d.name, err)
		}
	}
	return nil
}

// extractEntry makes one entry of the archive at name inside root.
func extractEntry(root *os.Root, tr *tar.Reader, hdr *tar.Header, name string) error {
	mode := hdr.FileInfo().Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	if parent := path.Dir(name); parent != "." {
		if err := root.MkdirAll(parent, 0o755); err != nil {
			return err
		}
	}
	if hdr.Typeflag == tar.TypeDir {
		if fi, err := root.Lstat(name); err != nil || !fi.IsDir() {
			if err := replace(root, name); err != nil {
				return err
			}
			if err := root.Mkdir(name, 0o700); err != nil {
				return err
			}
		}
		return root.Chmod(name, mode)
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeRegA:
		if err := replace(root, name); err != nil {
			return err
		}
		f, err := root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		_, cerr := io.Copy(f, tr)
		if err := errors.Join(cerr, f.Close()); err != nil {
			return err
		}
		if err := root.Chmod(name, mode); err != nil {
			return err
		}
		return root.Chtimes(name, hdr.ModTime, hdr.ModTime)
	case tar.TypeSymlink:
		if err := replace(root, name); err != nil {
			return err
		}
		return root.Symlink(hdr.Linkname, name)
	case tar.TypeLink:
		if err := replace(root, name); err != nil {
			return err
		}
		return root.Link(path.Clean("/" + hdr.Linkname)[1:], name)
	}
	return nil // devices, fifos, global headers: not build context
}

// replace removes what an earlier entry put at name: a later entry wins.
func replace(root *os.Root, name string) error {
	if err := root.RemoveAll(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
