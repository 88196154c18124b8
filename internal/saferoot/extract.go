package saferoot

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// ExtractOptions says how Extract unpacks.
type ExtractOptions struct {
	// Limits bound the archive; zero fields take the defaults.
	Limits Limits
	// Whiteouts applies OCI layer whiteouts: .wh.NAME deletes NAME, .wh..wh..opq
	// empties its directory of what was there before this archive.
	Whiteouts bool
	// Owner, when set, replaces every entry's owner.
	Owner *Owner
}

// ExtractStats is what Extract unpacked.
type ExtractStats struct {
	// Bytes is the file content written; Entries counts the archive's entries.
	Bytes, Entries int64
	// Devices counts device nodes left out: a tree never gets one.
	Devices int
}

// Extract unpacks the tar archive src (plain, gzip or bzip2) into the directory dir
// of the tree, which must exist. Entry names and hard link targets are paths below
// dir, and every name resolves inside dir as if it were the root (as when an
// archive is unpacked chrooted into its target), so a symbolic link unpacked first
// cannot lead a later entry out of dir. Entries replace what is there
// (a file is never written into). Device nodes are left out. It stops with
// ErrTooLarge (a *LimitError) past o.Limits, and when ctx is done.
func (r *Root) Extract(ctx context.Context, src io.Reader, dir string, o ExtractOptions) (ExtractStats, error) {
	var st ExtractStats
	l := o.Limits.WithDefaults()
	base := clean(dir)
	if fi, err := r.Stat(base); err != nil {
		return st, err
	} else if !fi.IsDir() {
		return st, pathErr("extract", base, unix.ENOTDIR)
	}
	in, _, err := Decompress(src, l)
	if err != nil {
		return st, err
	}
	// Entries resolve inside dir, as when an archive is unpacked chrooted into its
	// target: a link to "/" in it means dir, not the tree's top.
	into := r
	if base != "." {
		if into, err = r.subSame(base); err != nil {
			return st, err
		}
		defer into.Close()
	}
	x := extractor{root: into, base: ".", o: o, l: l, st: &st, created: map[string]bool{}}
	tr := tar.NewReader(in)
	for {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return st, fmt.Errorf("read archive: %w", err)
		}
		if st.Entries++; st.Entries > l.Entries {
			return st, &LimitError{What: "archive entries", Limit: l.Entries}
		}
		if err := x.entry(tr, hdr); err != nil {
			return st, fmt.Errorf("extract %s: %w", hdr.Name, err)
		}
	}
	for _, d := range slices.Backward(x.dirs) {
		if err := setTimes(into, d.name, d.hdr); err != nil {
			return st, fmt.Errorf("extract %s: %w", d.hdr.Name, err)
		}
	}
	return st, nil
}

type extractor struct {
	root    *Root
	base    string
	o       ExtractOptions
	l       Limits
	st      *ExtractStats
	created map[string]bool // entries this archive made, which its opaque whiteouts keep
	dirs    []dirTime       // directories, whose times are set last
}

type dirTime struct {
	name string
	hdr  *tar.Header
}

func (x *extractor) entry(tr *tar.Reader, hdr *tar.Header) error {
	rel := clean(hdr.Name)
	if rel == "." {
		return nil
	}
	name := path.Join(x.base, rel)
	parent, leaf := path.Dir(name), path.Base(name)
	if x.o.Whiteouts && strings.HasPrefix(leaf, ".wh.") {
		return x.whiteout(parent, leaf)
	}
	switch hdr.Typeflag {
	case tar.TypeChar, tar.TypeBlock:
		x.st.Devices++
		return nil
	case tar.TypeDir, tar.TypeReg, tar.TypeRegA, tar.TypeSymlink, tar.TypeLink, tar.TypeFifo:
	default:
		return nil // global headers and the like
	}
	if err := x.root.MkdirAll(parent, 0o755, Owner{}); err != nil {
		return err
	}
	x.created[name] = true
	r := x.root
	switch hdr.Typeflag {
	case tar.TypeDir:
		if fi, err := r.Lstat(name); err != nil || !fi.IsDir() {
			if err := r.RemoveAll(name); err != nil {
				return err
			}
			if err := r.Mkdir(name, 0o700); err != nil {
				return err
			}
		}
	case tar.TypeReg, tar.TypeRegA:
		if x.st.Bytes+hdr.Size > x.l.Bytes {
			return &LimitError{What: "archive content", Limit: x.l.Bytes}
		}
		if err := r.RemoveAll(name); err != nil {
			return err
		}
		f, err := r.Create(name, 0o600)
		if err != nil {
			return err
		}
		n, cerr := io.Copy(f, tr)
		x.st.Bytes += n
		if err := errors.Join(cerr, f.Close()); err != nil {
			return err
		}
	case tar.TypeSymlink:
		if err := r.RemoveAll(name); err != nil {
			return err
		}
		if err := r.Symlink(hdr.Linkname, name); err != nil {
			return err
		}
	case tar.TypeLink:
		old := path.Join(x.base, clean(hdr.Linkname))
		if fi, err := r.Lstat(old); err != nil {
			return fmt.Errorf("hard link to %s, which is not below the archive's directory: %w", hdr.Linkname, err)
		} else if fi.IsDir() {
			return fmt.Errorf("hard link to %s: a directory", hdr.Linkname)
		}
		if old == name {
			return nil
		}
		if err := r.RemoveAll(name); err != nil {
			return err
		}
		return r.Link(old, name) // shares its target's metadata
	case tar.TypeFifo:
		if err := r.RemoveAll(name); err != nil {
			return err
		}
		if err := r.Mkfifo(name, 0o600); err != nil {
			return err
		}
	}
	if err := x.setMeta(name, hdr); err != nil {
		return err
	}
	if hdr.Typeflag == tar.TypeDir {
		x.dirs = append(x.dirs, dirTime{name, hdr})
		return nil
	}
	return setTimes(r, name, hdr)
}

// whiteout applies the whiteout entry leaf found in directory parent.
func (x *extractor) whiteout(parent, leaf string) error {
	r := x.root
	switch {
	case leaf == ".wh..wh..opq":
		ents, err := r.ReadDir(parent)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, e := range ents {
			if p := path.Join(parent, e.Name()); !x.created[p] {
				if err := r.RemoveAll(p); err != nil {
					return err
				}
			}
		}
		return nil
	case strings.HasPrefix(leaf, ".wh..wh."):
		return nil // other AUFS bookkeeping
	}
	target := strings.TrimPrefix(leaf, ".wh.")
	if target == "" || target == "." || target == ".." {
		return fmt.Errorf("bad whiteout %q", leaf)
	}
	return r.RemoveAll(path.Join(parent, target))
}

// setMeta gives name the owner, mode and extended attributes of hdr.
func (x *extractor) setMeta(name string, hdr *tar.Header) error {
	uid, gid := hdr.Uid, hdr.Gid
	if x.o.Owner != nil {
		uid, gid = x.o.Owner.UID, x.o.Owner.GID
	}
	r := x.root
	if err := r.Lchown(name, uid, gid); err != nil {
		return err
	}
	if hdr.Typeflag == tar.TypeSymlink {
		return nil
	}
	if err := r.Chmod(name, hdr.FileInfo().Mode()); err != nil {
		return err
	}
	for _, k := range sortedKeys(hdr.PAXRecords) {
		attr, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok || strings.HasPrefix(attr, "trusted.overlay.") {
			continue
		}
		if err := r.Setxattr(name, attr, []byte(hdr.PAXRecords[k])); err != nil && !errors.Is(err, unix.ENOTSUP) {
			return err
		}
	}
	return nil
}

func setTimes(r *Root, name string, hdr *tar.Header) error {
	at := hdr.AccessTime
	if at.IsZero() {
		at = hdr.ModTime
	}
	return r.Lchtimes(name, at, hdr.ModTime)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
