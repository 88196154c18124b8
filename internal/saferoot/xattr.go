package saferoot

import (
	"errors"
	"strings"

	"golang.org/x/sys/unix"
)

// xattrPath names the entry for the l*xattr calls: its directory through /proc, then
// its last element, which those calls do not follow. The top is its /proc name and
// "/.", so that the call acts on the directory and not on the /proc link.
func (r *Root) xattrPath(op, name string, fn func(p string) error) error {
	if clean(name) == "." {
		return r.onTop(op, func() error { return fn(procPath(r.fd) + "/.") })
	}
	return r.inParent(op, name, func(dirfd int, leaf string) error {
		return fn(procPath(dirfd) + "/" + leaf)
	})
}

// Listxattr returns the names of the extended attributes of the entry name (not
// following a link). A file system without them gives none.
func (r *Root) Listxattr(name string) ([]string, error) {
	var names []string
	err := r.xattrPath("listxattr", name, func(p string) error {
		for {
			n, err := unix.Llistxattr(p, nil)
			if err != nil || n == 0 {
				if errors.Is(err, unix.ENOTSUP) {
					return nil
				}
				return err
			}
			buf := make([]byte, n)
			n, err = unix.Llistxattr(p, buf)
			if errors.Is(err, unix.ERANGE) {
				continue
			}
			if err != nil {
				return err
			}
			for _, s := range strings.Split(string(buf[:n]), "\x00") {
				if s != "" {
					names = append(names, s)
				}
			}
			return nil
		}
	})
	return names, err
}

// Getxattr returns the value of the extended attribute attr of the entry name.
func (r *Root) Getxattr(name, attr string) ([]byte, error) {
	var val []byte
	err := r.xattrPath("getxattr", name, func(p string) error {
		for {
			n, err := unix.Lgetxattr(p, attr, nil)
			if err != nil {
				return err
			}
			buf := make([]byte, n)
			n, err = unix.Lgetxattr(p, attr, buf)
			if errors.Is(err, unix.ERANGE) {
				continue
			}
			if err != nil {
				return err
			}
			val = buf[:n]
			return nil
		}
	})
	return val, err
}

// Setxattr sets the extended attribute attr of the entry name.
func (r *Root) Setxattr(name, attr string, val []byte) error {
	return r.xattrPath("setxattr", name, func(p string) error { return unix.Lsetxattr(p, attr, val, 0) })
}

// Removexattr removes the extended attribute attr of the entry name; a missing one
// is not an error.
func (r *Root) Removexattr(name, attr string) error {
	return r.xattrPath("removexattr", name, func(p string) error {
		if err := unix.Lremovexattr(p, attr); err != nil && !errors.Is(err, unix.ENODATA) {
			return err
		}
		return nil
	})
}
