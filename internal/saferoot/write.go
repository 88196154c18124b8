package saferoot

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Create makes the new regular file name (it must not exist, not even as a link)
// with permissions perm, and opens it for writing.
func (r *Root) Create(name string, perm fs.FileMode) (*os.File, error) {
	n := clean(name)
	fd, err := r.openat(n, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW, uint32(perm.Perm()))
	if err != nil {
		return nil, pathErr("create", n, err)
	}
	return os.NewFile(uintptr(fd), "/"+n), nil
}

// WriteFile replaces name with a new regular file holding data, with mode perm.
func (r *Root) WriteFile(name string, data []byte, perm fs.FileMode) error {
	if err := r.RemoveAll(name); err != nil {
		return err
	}
	f, err := r.Create(name, perm)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	return errors.Join(werr, f.Close())
}

// Mkdir makes the directory name with permissions perm (less the umask).
func (r *Root) Mkdir(name string, perm fs.FileMode) error {
	return r.inParent("mkdir", name, func(dirfd int, leaf string) error {
		return unix.Mkdirat(dirfd, leaf, uint32(perm.Perm()))
	})
}

// MkdirAll makes the directory name and its missing parents, following links inside
// the tree; the new ones get exactly mode perm (no umask) and owner o. An existing
// non-directory on the way fails with ENOTDIR, a link to nothing with EEXIST.
func (r *Root) MkdirAll(name string, perm fs.FileMode, o Owner) error {
	n := clean(name)
	if n == "." {
		return nil
	}
	cur := ""
	for _, c := range strings.Split(n, "/") {
		cur = path.Join(cur, c)
		fi, err := r.Stat(cur)
		switch {
		case err == nil && fi.IsDir():
			continue
		case err == nil:
			return pathErr("mkdir", cur, unix.ENOTDIR)
		case !errors.Is(err, fs.ErrNotExist):
			return err
		}
		if err := r.Mkdir(cur, perm); err != nil {
			if fi, serr := r.Stat(cur); errors.Is(err, fs.ErrExist) && serr == nil && fi.IsDir() {
				continue // made meanwhile
			}
			return err
		}
		if err := r.Lchown(cur, o.UID, o.GID); err != nil {
			return err
		}
		if err := r.Chmod(cur, perm); err != nil {
			return err
		}
	}
	return nil
}

// Symlink makes name a symbolic link to target. The target is stored as given: it
// is only ever resolved inside the tree.
func (r *Root) Symlink(target, name string) error {
	return r.inParent("symlink", name, func(dirfd int, leaf string) error {
		return unix.Symlinkat(target, dirfd, leaf)
	})
}

// Link makes newname a hard link to the entry oldname (a final link of oldname is
// linked itself, not followed). Directories cannot be linked.
func (r *Root) Link(oldname, newname string) error {
	return r.inParent("link", oldname, func(odir int, oleaf string) error {
		return r.inParent("link", newname, func(ndir int, nleaf string) error {
			return unix.Linkat(odir, oleaf, ndir, nleaf, 0)
		})
	})
}

// Mkfifo makes the named pipe name with permissions perm.
func (r *Root) Mkfifo(name string, perm fs.FileMode) error {
	return r.inParent("mkfifo", name, func(dirfd int, leaf string) error {
		return unix.Mknodat(dirfd, leaf, unix.S_IFIFO|uint32(perm.Perm()), 0)
	})
}

// Rename moves the entry oldname to newname, replacing what is there as rename(2)
// does.
func (r *Root) Rename(oldname, newname string) error {
	return r.inParent("rename", oldname, func(odir int, oleaf string) error {
		return r.inParent("rename", newname, func(ndir int, nleaf string) error {
			return unix.Renameat(odir, oleaf, ndir, nleaf)
		})
	})
}

// Remove removes the entry name: a file, a link (not its target) or an empty
// directory.
func (r *Root) Remove(name string) error {
	return r.inParent("remove", name, func(dirfd int, leaf string) error {
		err := unix.Unlinkat(dirfd, leaf, 0)
		if errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EPERM) {
			if derr := unix.Unlinkat(dirfd, leaf, unix.AT_REMOVEDIR); !errors.Is(derr, unix.ENOTDIR) {
				err = derr
			}
		}
		return err
	})
}

// RemoveAll removes the entry name and, for a directory, everything below it,
// never following a link. A missing entry is not an error.
func (r *Root) RemoveAll(name string) error {
	err := r.inParent("remove", name, func(dirfd int, leaf string) error {
		return removeAllAt(dirfd, leaf)
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// removeAllAt removes the entry leaf of the directory dirfd and all below it.
func removeAllAt(dirfd int, leaf string) error {
	err := unix.Unlinkat(dirfd, leaf, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EPERM) {
		return err
	}
	fd, err := unix.Openat(dirfd, leaf, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), leaf)
	for {
		names, rerr := f.Readdirnames(1024)
		for _, c := range names {
			if err := removeAllAt(fd, c); err != nil {
				f.Close()
				return err
			}
		}
		if rerr != nil || len(names) == 0 {
			break
		}
	}
	f.Close()
	err = unix.Unlinkat(dirfd, leaf, unix.AT_REMOVEDIR)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	return err
}

// Lchown sets the owner of the entry name (of a link itself, not its target).
func (r *Root) Lchown(name string, uid, gid int) error {
	if clean(name) == "." {
		return r.onTop("lchown", func() error { return unix.Fchownat(r.fd, "", uid, gid, unix.AT_EMPTY_PATH) })
	}
	return r.inParent("lchown", name, func(dirfd int, leaf string) error {
		return unix.Fchownat(dirfd, leaf, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
	})
}

// Chmod sets the mode bits of the entry name (permissions, set-id and sticky bits).
// A symbolic link is refused: it has no mode of its own and is never followed.
func (r *Root) Chmod(name string, mode fs.FileMode) error {
	m := unixMode(mode)
	if clean(name) == "." {
		return r.onTop("chmod", func() error { return unix.Fchmodat(r.fd, "", m, unix.AT_EMPTY_PATH) })
	}
	return r.inParent("chmod", name, func(dirfd int, leaf string) error {
		return unix.Fchmodat(dirfd, leaf, m, unix.AT_SYMLINK_NOFOLLOW)
	})
}

// unixMode converts permissions and the set-id and sticky bits to a stat mode. The
// bits may come as fs.ModeSetuid and the like or as their octal values (0o4000).
func unixMode(mode fs.FileMode) uint32 {
	m := uint32(mode & 0o7777)
	if mode&fs.ModeSetuid != 0 {
		m |= unix.S_ISUID
	}
	if mode&fs.ModeSetgid != 0 {
		m |= unix.S_ISGID
	}
	if mode&fs.ModeSticky != 0 {
		m |= unix.S_ISVTX
	}
	return m
}

// Lchtimes sets the access and modification times of the entry name (of a link
// itself).
func (r *Root) Lchtimes(name string, atime, mtime time.Time) error {
	ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	if clean(name) == "." {
		return r.onTop("chtimes", func() error { return unix.UtimesNanoAt(r.fd, "", ts, unix.AT_EMPTY_PATH) })
	}
	return r.inParent("chtimes", name, func(dirfd int, leaf string) error {
		return unix.UtimesNanoAt(dirfd, leaf, ts, unix.AT_SYMLINK_NOFOLLOW)
	})
}

func (r *Root) onTop(op string, fn func() error) error {
	if err := fn(); err != nil {
		return pathErr(op, ".", err)
	}
	return nil
}
