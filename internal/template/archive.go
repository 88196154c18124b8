package template

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// decompress returns the uncompressed stream of r (gzip, bzip2 or none) and the
// compression's name. xz and zstd are recognised and refused.
func decompress(r io.Reader) (io.Reader, string, error) {
	br := bufio.NewReader(r)
	magic, _ := br.Peek(6)
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		gz, err := gzip.NewReader(br)
		return gz, "gzip", err
	case bytes.HasPrefix(magic, []byte("BZh")):
		return bzip2.NewReader(br), "bzip2", nil
	case bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return nil, "xz", fmt.Errorf("%w: xz-compressed archives are not supported (use gzip, or unpack with tar in a RUN step)", ErrInvalid)
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return nil, "zstd", fmt.Errorf("%w: zstd-compressed archives are not supported (use gzip)", ErrInvalid)
	}
	return br, "", nil
}

// isArchive reports whether the file is a tar archive ADD unpacks: plain, gzip or
// bzip2 (xz is an error).
func isArchive(p string) (bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer f.Close()
	r, _, err := decompress(f)
	if err != nil {
		return false, err
	}
	hdr := make([]byte, 512)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return false, nil
	}
	return bytes.Equal(hdr[257:262], []byte("ustar")), nil
}

// extractOptions says how an archive is unpacked.
type extractOptions struct {
	// whiteouts applies OCI layer whiteouts (.wh.NAME deletes NAME, .wh..wh..opq
	// empties the directory of what earlier layers put there).
	whiteouts bool
	// chown, when set, replaces every entry's owner.
	chown *owner
	log   *buildLog
}

// extractFile unpacks the archive at p into dir, a directory of the tree at root.
func extractFile(p, root, dir string, o extractOptions) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	r, _, err := decompress(f)
	if err != nil {
		return err
	}
	return extractTar(r, root, dir, o)
}

// extractTar unpacks the tar stream r into dir (a host path inside root). Names and
// links are confined to the tree: ".." and symbolic links cannot lead out of it.
// Device files are skipped. Entries replace what is there (never written into).
func extractTar(r io.Reader, root, dir string, o extractOptions) error {
	rel, err := filepath.Rel(root, dir)
	if err != nil || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("extract: %s is not inside %s", dir, root)
	}
	base := "/" + filepath.ToSlash(rel)
	tr := tar.NewReader(r)
	created := map[string]bool{}
	type dirTime struct {
		path string
		hdr  *tar.Header
	}
	var dirs []dirTime
	devices := 0
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("extract: %w", err)
		}
		name := path.Clean("/" + hdr.Name)
		if name == "/" {
			continue
		}
		parentIn, leaf := path.Join(base, path.Dir(name)), path.Base(name)
		if o.whiteouts && strings.HasPrefix(leaf, ".wh.") {
			if err := whiteout(root, parentIn, leaf, created); err != nil {
				return fmt.Errorf("extract %s: %w", hdr.Name, err)
			}
			continue
		}
		parent, err := mkdirAllIn(root, parentIn, 0o755, owner{})
		if err != nil {
			return fmt.Errorf("extract %s: %w", hdr.Name, err)
		}
		target := filepath.Join(parent, leaf)
		created[target] = true
		if hdr.Typeflag == tar.TypeChar || hdr.Typeflag == tar.TypeBlock {
			devices++
			continue
		}
		made, err := makeEntry(tr, hdr, root, base, target)
		if err != nil {
			return fmt.Errorf("extract %s: %w", hdr.Name, err)
		}
		if !made {
			continue
		}
		if err := setHeaderMeta(target, hdr, o.chown); err != nil {
			return fmt.Errorf("extract %s: %w", hdr.Name, err)
		}
		if hdr.Typeflag == tar.TypeDir {
			dirs = append(dirs, dirTime{target, hdr})
		} else if err := setTimes(target, hdr); err != nil {
			return fmt.Errorf("extract %s: %w", hdr.Name, err)
		}
	}
	for _, d := range slices.Backward(dirs) {
		if err := setTimes(d.path, d.hdr); err != nil {
			return fmt.Errorf("extract %s: %w", d.hdr.Name, err)
		}
	}
	if devices > 0 && o.log != nil {
		o.log.infof("warning: skipped %d device files of the archive", devices)
	}
	return nil
}

// whiteout applies an OCI whiteout entry found in directory parentIn of the tree.
func whiteout(root, parentIn, leaf string, created map[string]bool) error {
	parent, err := resolveIn(root, parentIn, true)
	if err != nil {
		return err
	}
	switch {
	case leaf == ".wh..wh..opq":
		ents, err := os.ReadDir(parent)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, e := range ents {
			if p := filepath.Join(parent, e.Name()); !created[p] {
				if err := removeEntry(p); err != nil {
					return err
				}
			}
		}
		return nil
	case strings.HasPrefix(leaf, ".wh..wh."):
		return nil // other AUFS bookkeeping
	}
	return removeEntry(filepath.Join(parent, strings.TrimPrefix(leaf, ".wh.")))
}

// makeEntry creates the entry hdr describes at target and reports whether it has
// its own metadata to set (a hard link shares its target's).
func makeEntry(tr *tar.Reader, hdr *tar.Header, root, base, target string) (bool, error) {
	old, oerr := os.Lstat(target)
	if hdr.Typeflag == tar.TypeDir {
		if oerr == nil && old.IsDir() {
			return true, nil
		}
		if err := removeEntry(target); err != nil {
			return false, err
		}
		return true, os.Mkdir(target, 0o700)
	}
	if err := removeEntry(target); err != nil {
		return false, err
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeRegA:
		f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return false, err
		}
		_, cerr := io.Copy(f, tr)
		return true, errors.Join(cerr, f.Close())
	case tar.TypeSymlink:
		return true, os.Symlink(hdr.Linkname, target)
	case tar.TypeLink:
		src, err := resolveIn(root, path.Join(base, path.Clean("/"+hdr.Linkname)), false)
		if err != nil {
			return false, err
		}
		if fi, err := os.Lstat(src); err != nil || fi.IsDir() {
			return false, fmt.Errorf("hard link to %s: not a file in the archive", hdr.Linkname)
		}
		return false, os.Link(src, target)
	case tar.TypeFifo:
		return true, unix.Mkfifo(target, 0o600)
	}
	return false, nil // global headers and the like
}

// setHeaderMeta gives target the owner, mode and extended attributes of hdr.
func setHeaderMeta(target string, hdr *tar.Header, chown *owner) error {
	uid, gid := hdr.Uid, hdr.Gid
	if chown != nil {
		uid, gid = chown.UID, chown.GID
	}
	if err := os.Lchown(target, uid, gid); err != nil {
		return err
	}
	if hdr.Typeflag == tar.TypeSymlink {
		return nil
	}
	if err := unix.Fchmodat(unix.AT_FDCWD, target, uint32(hdr.Mode)&0o7777, 0); err != nil {
		return err
	}
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok || strings.HasPrefix(name, overlayXattrPrefix) {
			continue
		}
		if err := unix.Lsetxattr(target, name, []byte(v), 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
			return fmt.Errorf("set %s: %w", name, err)
		}
	}
	return nil
}

func setTimes(target string, hdr *tar.Header) error {
	mt := unix.NsecToTimespec(hdr.ModTime.UnixNano())
	at := mt
	if !hdr.AccessTime.IsZero() {
		at = unix.NsecToTimespec(hdr.AccessTime.UnixNano())
	}
	return unix.UtimesNanoAt(unix.AT_FDCWD, target, []unix.Timespec{at, mt}, unix.AT_SYMLINK_NOFOLLOW)
}
