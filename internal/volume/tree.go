package volume

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"lelantos.dev/lelantos/internal/saferoot"
)

// Tree is the content of one volume as host-side code reads and writes it. Paths are
// absolute inside the volume ("/a/b"; "a/b" is the same); ".." never goes above the
// top, and symbolic links resolve as they would for a process whose root is the
// volume, so nothing outside it is reached. Its methods are safe for concurrent use;
// Close it when done.
type Tree struct {
	root *saferoot.Root
}

// OpenTree opens the directory dir, a trusted host path, as a volume's content.
func OpenTree(dir string) (*Tree, error) {
	r, err := saferoot.Open(dir, saferoot.InRoot)
	if err != nil {
		return nil, fmt.Errorf("open volume content: %w", mapErr(err))
	}
	return &Tree{root: r}, nil
}

// openSub opens the directory name below the trusted top dir as a volume's content,
// never crossing a mount point on the way.
func openSub(dir, name string) (*Tree, error) {
	top, err := saferoot.Open(dir, saferoot.Beneath)
	if err != nil {
		return nil, fmt.Errorf("open volume content: %w", mapErr(err))
	}
	defer top.Close()
	r, err := top.Sub(name, saferoot.InRoot)
	if err != nil {
		return nil, fmt.Errorf("open volume content: %w", mapErr(err))
	}
	return &Tree{root: r}, nil
}

// Close releases the tree.
func (t *Tree) Close() error { return t.root.Close() }

// clean checks name and returns it as the absolute path the API reports.
func clean(name string) (string, error) {
	if strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("path %q: contains a NUL byte: %w", name, ErrInvalid)
	}
	c := saferoot.Clean(name)
	if c == "." {
		return "/", nil
	}
	return "/" + c, nil
}

// Stat describes the entry at name.
func (t *Tree) Stat(name string) (Entry, error) {
	p, err := clean(name)
	if err != nil {
		return Entry{}, err
	}
	e, err := t.entry(p)
	if err != nil {
		return Entry{}, fmt.Errorf("stat %s: %w", p, err)
	}
	return e, nil
}

// entry describes the entry at the cleaned path p, without following a final link.
func (t *Tree) entry(p string) (Entry, error) {
	fi, err := t.root.Lstat(p)
	if err != nil {
		return Entry{}, mapErr(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	e := Entry{
		Name: path.Base(p), Path: p, Size: st.Size, Mode: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid,
		Atime: time.Unix(st.Atim.Unix()).UTC(), Mtime: time.Unix(st.Mtim.Unix()).UTC(),
		Ctime: time.Unix(st.Ctim.Unix()).UTC(),
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		e.Type = TypeFile
	case unix.S_IFDIR:
		e.Type = TypeDirectory
	case unix.S_IFLNK:
		e.Type = TypeSymlink
		if e.Target, err = t.root.Readlink(p); err != nil {
			return Entry{}, mapErr(err)
		}
	default:
		e.Type = TypeUnknown
	}
	return e, nil
}

// List describes the entries below the directory name, depth levels deep (1: its
// children only), sorted by path; links are listed, not followed. A path that is not
// a directory is ErrNotFound; more than MaxListEntries entries are ErrInvalid.
func (t *Tree) List(name string, depth int) ([]Entry, error) {
	p, err := clean(name)
	if err != nil {
		return nil, err
	}
	if depth < 1 {
		return nil, fmt.Errorf("list %s: depth %d must be at least 1: %w", p, depth, ErrInvalid)
	}
	fi, err := t.root.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", p, mapErr(err))
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("list %s: not a directory: %w", p, ErrNotFound)
	}
	out := []Entry{}
	var walk func(dir string, level int) error
	walk = func(dir string, level int) error {
		ents, err := t.root.ReadDir(dir)
		if err != nil {
			return mapErr(err)
		}
		for _, d := range ents {
			if len(out) >= MaxListEntries {
				return fmt.Errorf("more than %d entries (ask for less depth): %w", MaxListEntries, ErrInvalid)
			}
			e, err := t.entry(path.Join(dir, d.Name()))
			if errors.Is(err, ErrNotFound) {
				continue // removed meanwhile
			}
			if err != nil {
				return err
			}
			out = append(out, e)
			if e.Type == TypeDirectory && level < depth {
				if err := walk(e.Path, level+1); err != nil && !errors.Is(err, ErrNotFound) {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(p, 1); err != nil {
		return nil, fmt.Errorf("list %s: %w", p, err)
	}
	return out, nil
}

// Open opens the regular file name for reading and describes it. Anything else
// (a directory, a FIFO, a device node) is ErrNotFound, and is never opened for
// reading.
func (t *Tree) Open(name string) (*os.File, Entry, error) {
	p, err := clean(name)
	if err != nil {
		return nil, Entry{}, err
	}
	f, err := t.root.Open(p)
	if err != nil {
		if errors.Is(err, saferoot.ErrNotRegular) {
			return nil, Entry{}, fmt.Errorf("read %s: not a regular file: %w", p, ErrNotFound)
		}
		return nil, Entry{}, fmt.Errorf("read %s: %w", p, mapErr(err))
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, Entry{}, fmt.Errorf("read %s: %w", p, err)
	}
	e := Entry{Name: path.Base(p), Path: p, Type: TypeFile, Size: st.Size, Mode: st.Mode & 0o7777,
		UID: st.Uid, GID: st.Gid, Atime: time.Unix(st.Atim.Unix()).UTC(),
		Mtime: time.Unix(st.Mtim.Unix()).UTC(), Ctime: time.Unix(st.Ctim.Unix()).UTC()}
	return f, e, nil
}

// mapErr adds this package's sentinels to the errors of file operations.
func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrExists), errors.Is(err, ErrNoSpace), errors.Is(err, ErrInvalid):
		return err
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, unix.ENOTDIR):
		return errors.Join(ErrNotFound, err)
	case errors.Is(err, fs.ErrExist), errors.Is(err, unix.ENOTEMPTY):
		return errors.Join(ErrExists, err)
	case errors.Is(err, unix.ENOSPC), errors.Is(err, unix.EDQUOT):
		return errors.Join(ErrNoSpace, err)
	case errors.Is(err, saferoot.ErrEscape), errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENAMETOOLONG),
		errors.Is(err, unix.ELOOP):
		return errors.Join(ErrInvalid, err)
	}
	return err
}
