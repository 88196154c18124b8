package identity

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Perm is a set of permission bits to check: Read, Write and Exec (search for
// directories), with the values of the "other" bits in a mode.
type Perm uint32

// The permission bits a check may ask for.
const (
	Read  Perm = 4
	Write Perm = 2
	Exec  Perm = 1
)

// permError wraps fs.ErrPermission with the path that refused the user.
func permError(u User, path string, want Perm) error {
	return fmt.Errorf("user %q may not %s %s: %w", u.Name, want, path, fs.ErrPermission)
}

// String names the bits, e.g. "read/search".
func (p Perm) String() string {
	var parts []string
	if p&Read != 0 {
		parts = append(parts, "read")
	}
	if p&Write != 0 {
		parts = append(parts, "write")
	}
	if p&Exec != 0 {
		parts = append(parts, "search")
	}
	return strings.Join(parts, "/")
}

// Allows reports whether the mode bits of st grant u every bit of want, the way
// the kernel decides it (owner, then group, then other; root may do anything).
func (u User) Allows(st *syscall.Stat_t, want Perm) bool {
	if u.IsRoot() {
		return true
	}
	mode := st.Mode & 0o777
	var bits uint32
	switch {
	case st.Uid == u.UID:
		bits = mode >> 6
	case u.inGroup(st.Gid):
		bits = (mode >> 3) & 7
	default:
		bits = mode & 7
	}
	return Perm(bits)&want == want
}

// statT returns the raw stat of path (following symlinks when follow is set).
func statT(path string, follow bool) (*syscall.Stat_t, error) {
	var st syscall.Stat_t
	var err error
	if follow {
		err = syscall.Stat(path, &st)
	} else {
		err = syscall.Lstat(path, &st)
	}
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	return &st, nil
}

// maxSymlinks bounds the symlinks one check follows (as the kernel's ELOOP).
const maxSymlinks = 40

// CheckTraverse verifies u may search every directory from / down to dir
// (inclusive), the way path lookup would: component by component, checking a
// directory before looking inside it, and checking the whole target path of a
// symlink met on the way. dir must be absolute.
func (u User) CheckTraverse(dir string) error {
	if u.IsRoot() {
		return nil
	}
	links := 0
	return u.traverse(filepath.Clean(dir), &links)
}

// traverse implements CheckTraverse, counting followed symlinks in links.
func (u User) traverse(dir string, links *int) error {
	cur := "/"
	if err := u.searchable(cur); err != nil {
		return err
	}
	for _, part := range strings.Split(strings.TrimPrefix(dir, "/"), "/") {
		if part == "" {
			continue
		}
		next := filepath.Join(cur, part)
		lst, err := statT(next, false)
		if err != nil {
			return err
		}
		if lst.Mode&syscall.S_IFMT == syscall.S_IFLNK {
			*links++
			if *links > maxSymlinks {
				return &fs.PathError{Op: "traverse", Path: next, Err: syscall.ELOOP}
			}
			target, err := filepath.EvalSymlinks(next)
			if err != nil {
				return err
			}
			if err := u.traverse(target, links); err != nil {
				return err
			}
			cur = target
			continue
		}
		if err := u.searchable(next); err != nil {
			return err
		}
		cur = next
	}
	return nil
}

// searchable verifies dir is a directory u may search.
func (u User) searchable(dir string) error {
	st, err := statT(dir, true)
	if err != nil {
		return err
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return &fs.PathError{Op: "traverse", Path: dir, Err: syscall.ENOTDIR}
	}
	if !u.Allows(st, Exec) {
		return permError(u, dir, Exec)
	}
	return nil
}

// Check verifies u may reach path (search on its parents) and has want on the
// file path names (symlinks followed). A missing path gives fs.ErrNotExist.
func (u User) Check(path string, want Perm) error {
	if err := u.CheckTraverse(filepath.Dir(path)); err != nil {
		return err
	}
	st, err := statT(path, true)
	if err != nil {
		return err
	}
	if !u.Allows(st, want) {
		return permError(u, path, want)
	}
	return nil
}

// CheckEntry verifies u may reach path without following a final symlink: it
// needs search permission on every parent. A missing entry gives fs.ErrNotExist.
func (u User) CheckEntry(path string) error {
	if err := u.CheckTraverse(filepath.Dir(path)); err != nil {
		return err
	}
	_, err := statT(path, false)
	return err
}

// CheckUnlink verifies u may remove or rename the entry at path: write and
// search on its directory, and with the sticky bit set, ownership of the entry
// or the directory.
func (u User) CheckUnlink(path string) error {
	if u.IsRoot() {
		return nil
	}
	dir := filepath.Dir(path)
	if err := u.Check(dir, Write|Exec); err != nil {
		return err
	}
	dst, err := statT(dir, true)
	if err != nil {
		return err
	}
	if dst.Mode&syscall.S_ISVTX != 0 {
		est, err := statT(path, false)
		if err != nil {
			return err
		}
		if est.Uid != u.UID && dst.Uid != u.UID {
			return permError(u, path, Write)
		}
	}
	return nil
}

// MkdirAll creates dir and its missing parents, each owned by u (when the daemon
// may chown) with mode 0755, after checking u may write where each is created.
// An existing non-directory along the way gives syscall.ENOTDIR.
func (u User) MkdirAll(dir string) error {
	st, err := os.Stat(dir)
	if err == nil {
		if !st.IsDir() {
			return &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := u.MkdirAll(parent); err != nil {
			return err
		}
	}
	if err := u.Check(parent, Write|Exec); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil
		}
		return err
	}
	return u.Own(dir)
}

// Own makes path owned by u when the daemon runs as root (a no-op otherwise).
func (u User) Own(path string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	if err := os.Lchown(path, int(u.UID), int(u.GID)); err != nil {
		return fmt.Errorf("chown %s to %s: %w", path, u.Name, err)
	}
	return nil
}
