package saferoot

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Lstat describes the entry name; a final symbolic link is described, not followed.
// Its Sys() is a *syscall.Stat_t.
func (r *Root) Lstat(name string) (fs.FileInfo, error) { return r.stat("lstat", name, false) }

// Stat describes name, following a final symbolic link inside the tree.
func (r *Root) Stat(name string) (fs.FileInfo, error) { return r.stat("stat", name, true) }

func (r *Root) stat(op, name string, follow bool) (fs.FileInfo, error) {
	n := clean(name)
	flags := unix.O_PATH
	if !follow {
		flags |= unix.O_NOFOLLOW
	}
	fd, err := r.openat(n, flags, 0)
	if err != nil {
		return nil, pathErr(op, n, err)
	}
	defer unix.Close(fd)
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil, pathErr(op, n, err)
	}
	return &fileInfo{name: path.Base("/" + n), st: st}, nil
}

// fileInfo is an fs.FileInfo made from a stat buffer.
type fileInfo struct {
	name string
	st   syscall.Stat_t
}

func (fi *fileInfo) Name() string       { return fi.name }
func (fi *fileInfo) Size() int64        { return fi.st.Size }
func (fi *fileInfo) Mode() fs.FileMode  { return modeOf(fi.st.Mode) }
func (fi *fileInfo) ModTime() time.Time { return time.Unix(fi.st.Mtim.Unix()) }
func (fi *fileInfo) IsDir() bool        { return fi.Mode().IsDir() }
func (fi *fileInfo) Sys() any           { return &fi.st }

// modeOf converts a stat mode to an fs.FileMode, as package os does.
func modeOf(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & unix.S_IFMT {
	case unix.S_IFBLK:
		mode |= fs.ModeDevice
	case unix.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFDIR:
		mode |= fs.ModeDir
	case unix.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case unix.S_IFLNK:
		mode |= fs.ModeSymlink
	case unix.S_IFSOCK:
		mode |= fs.ModeSocket
	}
	if m&unix.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// Open opens the regular file name for reading, following symbolic links inside the
// tree. Anything else is refused with ErrNotRegular before it is opened for reading,
// so a FIFO cannot block and a device node is never read.
func (r *Root) Open(name string) (*os.File, error) {
	n := clean(name)
	fd, err := r.openat(n, unix.O_PATH, 0)
	if err != nil {
		return nil, pathErr("open", n, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, pathErr("open", n, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, pathErr("open", n, ErrNotRegular)
	}
	// Reopen the very inode just checked, for reading.
	rfd, err := unix.Open(procPath(fd), unix.O_RDONLY|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, pathErr("open", n, err)
	}
	return os.NewFile(uintptr(rfd), "/"+strings.TrimPrefix(n, "./")), nil
}

// ReadFile reads the regular file name, refusing with ErrTooLarge one of more than
// limit bytes.
func (r *Root) ReadFile(name string, limit int64) ([]byte, error) {
	f, err := r.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, pathErr("read", clean(name), err)
	}
	if int64(len(data)) > limit {
		return nil, pathErr("read", clean(name), &LimitError{What: "file", Limit: limit})
	}
	return data, nil
}

// Readlink returns the target of the symbolic link name.
func (r *Root) Readlink(name string) (string, error) {
	n := clean(name)
	fd, err := r.openat(n, unix.O_PATH|unix.O_NOFOLLOW, 0)
	if err != nil {
		return "", pathErr("readlink", n, err)
	}
	defer unix.Close(fd)
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		k, err := unix.Readlinkat(fd, "", buf)
		if err != nil {
			return "", pathErr("readlink", n, err)
		}
		if k < size {
			return string(buf[:k]), nil
		}
	}
}

// ReadDir lists the directory name (following links inside the tree), sorted by
// name. The entries' Info describes them without following links.
func (r *Root) ReadDir(name string) ([]fs.DirEntry, error) { return r.readDir(name, true) }

func (r *Root) readDir(name string, follow bool) ([]fs.DirEntry, error) {
	n := clean(name)
	flags := unix.O_RDONLY | unix.O_DIRECTORY
	if !follow {
		flags |= unix.O_NOFOLLOW
	}
	fd, err := r.openat(n, flags, 0)
	if err != nil {
		return nil, pathErr("readdir", n, err)
	}
	f := os.NewFile(uintptr(fd), n)
	defer f.Close()
	// os's entries would stat through f's name as a host path: keep only names and types.
	ents, err := f.ReadDir(-1)
	if err != nil {
		return nil, pathErr("readdir", n, err)
	}
	out := make([]fs.DirEntry, 0, len(ents))
	for _, e := range ents {
		out = append(out, &dirEntry{root: r, name: e.Name(), full: path.Join(n, e.Name()), typ: e.Type()})
	}
	slices.SortFunc(out, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return out, nil
}

type dirEntry struct {
	root       *Root
	name, full string
	typ        fs.FileMode
}

func (d *dirEntry) Name() string               { return d.name }
func (d *dirEntry) IsDir() bool                { return d.typ.IsDir() }
func (d *dirEntry) Type() fs.FileMode          { return d.typ }
func (d *dirEntry) Info() (fs.FileInfo, error) { return d.root.Lstat(d.full) }

// Walk walks the tree below name like fs.WalkDir, in lexical order, calling fn with
// each entry's path inside the tree (relative, "." for the top). Symbolic links are
// reported, never followed, except for name itself. fn may return fs.SkipDir and
// fs.SkipAll.
func (r *Root) Walk(name string, fn fs.WalkDirFunc) error {
	n := clean(name)
	fi, err := r.Stat(n)
	if err != nil {
		err = fn(n, nil, err)
	} else {
		err = r.walk(n, fs.FileInfoToDirEntry(fi), fn, true)
	}
	if errors.Is(err, fs.SkipDir) || errors.Is(err, fs.SkipAll) {
		return nil
	}
	return err
}

func (r *Root) walk(n string, d fs.DirEntry, fn fs.WalkDirFunc, top bool) error {
	if err := fn(n, d, nil); err != nil || !d.IsDir() {
		if errors.Is(err, fs.SkipDir) && d.IsDir() {
			err = nil
		}
		return err
	}
	ents, err := r.readDir(n, top)
	if err != nil {
		if err = fn(n, d, err); err != nil {
			if errors.Is(err, fs.SkipDir) {
				err = nil
			}
			return err
		}
	}
	for _, e := range ents {
		if err := r.walk(path.Join(n, e.Name()), e, fn, false); err != nil {
			if errors.Is(err, fs.SkipDir) {
				break
			}
			return err
		}
	}
	return nil
}
