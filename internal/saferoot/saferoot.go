// Package saferoot is how host-side code touches a directory tree it must not trust:
// a build context an API user uploaded, an image's layers, a tree that code ran in.
//
// A Root is an open directory. Every name given to its methods is a path inside the
// tree ("/etc/passwd" and "etc/passwd" are the same file); it is cleaned lexically
// first, so ".." never goes above the top. Symbolic links met on the way are then
// resolved by the kernel (openat2(2)) in one of two modes:
//
//   - InRoot resolves them as they would be for a process whose root is the tree:
//     an absolute link starts again at the tree's top and ".." stops there. This is
//     what copying out of an image needs (/lib -> /usr/lib still works), and nothing
//     outside the tree is ever reached.
//   - Beneath refuses every resolution that would leave the tree (absolute links,
//     ".." past the top) with ErrEscape. It suits trees with no reason to hold such
//     links, like an OCI image layout.
//
// In both modes resolution never crosses a mount point or follows a /proc magic
// link (ErrEscape), and the kernel re-checks every step, so a link swapped in
// between two calls cannot lead out either. Operations on an entry itself (Lstat,
// Remove, Lchown, Chmod, times, extended attributes) never follow a final link;
// Open reads regular files only, so a FIFO cannot hang a reader nor a device node
// be read (ErrNotRegular). ReadFile takes a size limit (ErrTooLarge), and Extract
// unpacks tar archives with limits on bytes, entries and compression ratio.
package saferoot

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// Errors callers branch on. They arrive wrapped in an *fs.PathError naming the
// operation and the path inside the tree.
var (
	// ErrEscape: resolving the path would leave the tree (Beneath mode), cross a mount
	// point or follow a /proc magic link.
	ErrEscape = errors.New("the path leads out of the tree or across a mount point")
	// ErrNotRegular: the file to read is not a regular file (a directory, FIFO,
	// device node or socket).
	ErrNotRegular = errors.New("not a regular file")
	// ErrTooLarge: a file, archive or decompressed stream is over its limit.
	ErrTooLarge = errors.New("over the size limit")
	// ErrRoot: the operation needs an entry in a directory and was given the tree's
	// top itself (e.g. Remove("/")).
	ErrRoot = errors.New("the operation needs an entry, not the tree's top")
)

// Mode says how symbolic links resolve; see the package documentation.
type Mode int

// The resolution modes.
const (
	// InRoot resolves as for a process whose root is the tree.
	InRoot Mode = iota
	// Beneath refuses resolutions that would leave the tree.
	Beneath
)

// Owner is a numeric file owner.
type Owner struct{ UID, GID int }

// Root is an open directory tree. Its methods are safe for concurrent use.
type Root struct {
	fd      int
	dir     string
	resolve uint64
}

// Open opens the directory dir (a trusted host path) as a tree resolved in mode.
func Open(dir string, mode Mode) (*Root, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open tree", Path: dir, Err: err}
	}
	return &Root{fd: fd, dir: dir, resolve: resolveFlags(mode)}, nil
}

func resolveFlags(mode Mode) uint64 {
	f := uint64(unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV)
	if mode == Beneath {
		return f | unix.RESOLVE_BENEATH
	}
	return f | unix.RESOLVE_IN_ROOT
}

// Sub opens the directory name of the tree as a tree of its own, resolved in mode.
func (r *Root) Sub(name string, mode Mode) (*Root, error) {
	n := clean(name)
	fd, err := r.openat(n, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, pathErr("open tree", n, err)
	}
	return &Root{fd: fd, dir: path.Join(r.dir, n), resolve: resolveFlags(mode)}, nil
}

// subSame opens the directory name of the tree as a tree of its own, resolved
// like r.
func (r *Root) subSame(name string) (*Root, error) {
	n := clean(name)
	fd, err := r.openat(n, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, pathErr("open tree", n, err)
	}
	return &Root{fd: fd, dir: path.Join(r.dir, n), resolve: r.resolve}, nil
}

// Dir is the host path the tree was opened at, for messages and for handing the
// tree to programs that run inside it.
func (r *Root) Dir() string { return r.dir }

// Close releases the tree's directory.
func (r *Root) Close() error { return unix.Close(r.fd) }

// clean makes name a relative path inside the tree, "." for the top.
func clean(name string) string {
	c := strings.TrimPrefix(path.Clean("/"+name), "/")
	if c == "" {
		return "."
	}
	return c
}

// Clean returns name as this package reads it: a relative path inside the tree with
// no ".." and "." for the top.
func Clean(name string) string { return clean(name) }

// openat opens the cleaned name n with openat2 and the tree's resolution.
func (r *Root) openat(n string, flags int, mode uint32) (int, error) {
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Mode: uint64(mode), Resolve: r.resolve}
	for range 64 {
		fd, err := unix.Openat2(r.fd, n, &how)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue // a rename raced the resolution; the kernel asks to try again
		}
		return fd, mapErr(err)
	}
	return -1, unix.EAGAIN
}

// mapErr turns the error openat2 uses for leaving the tree (EXDEV) into ErrEscape.
func mapErr(err error) error {
	if errors.Is(err, unix.EXDEV) {
		return escapeError{err}
	}
	return err
}

// escapeError is ErrEscape, and the errno it came as.
type escapeError struct{ errno error }

func (e escapeError) Error() string   { return ErrEscape.Error() }
func (e escapeError) Unwrap() []error { return []error{ErrEscape, e.errno} }

// parent opens the directory holding the entry n (cleaned, not the top) and returns
// it with the entry's last element.
func (r *Root) parent(n string) (int, string, error) {
	if n == "." {
		return -1, "", ErrRoot
	}
	fd, err := r.openat(path.Dir(n), unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return -1, "", err
	}
	return fd, path.Base(n), nil
}

// inParent runs fn on the directory holding name and its last element.
func (r *Root) inParent(op, name string, fn func(dirfd int, leaf string) error) error {
	n := clean(name)
	dirfd, leaf, err := r.parent(n)
	if err != nil {
		return pathErr(op, n, err)
	}
	defer unix.Close(dirfd)
	if err := fn(dirfd, leaf); err != nil {
		return pathErr(op, n, mapErr(err))
	}
	return nil
}

func pathErr(op, n string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return err
	}
	if n == "." {
		n = ""
	}
	return &fs.PathError{Op: op, Path: "/" + n, Err: err}
}

// procPath names the open file fd through /proc, for the few calls that have no
// form taking a directory descriptor (extended attributes, reopening an O_PATH
// descriptor). The host's /proc is trusted; the descriptor pins the file.
func procPath(fd int) string { return fmt.Sprintf("/proc/self/fd/%d", fd) }
