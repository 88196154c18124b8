package template

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// overlayfs keeps its bookkeeping in trusted.overlay.* extended attributes; a
// directory whose lower contents are hidden carries opaqueXattr = "y".
const (
	overlayXattrPrefix = "trusted.overlay."
	opaqueXattr        = "trusted.overlay.opaque"
)

// mountOverlay mounts at merged an overlay whose changes go to upper. Directory
// renames copy (redirect_dir=off) and metadata changes copy whole files
// (metacopy=off), so the upper directory alone says what changed.
func mountOverlay(lower, upper, work, merged string) error {
	for _, p := range []string{lower, upper, work} {
		if strings.ContainsAny(p, ",:\\") {
			return fmt.Errorf("mount overlay: path %q contains , : or \\", p)
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s,redirect_dir=off,metacopy=off,index=off,xino=off", lower, upper, work)
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		return fmt.Errorf("mount overlay on %s: %w", merged, err)
	}
	return nil
}

// unmount unmounts p, waiting a little for the last users to go.
func unmount(p string) error {
	for i := 0; ; i++ {
		err := unix.Unmount(p, 0)
		switch {
		case err == nil || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT):
			return nil
		case errors.Is(err, unix.EBUSY) && i < 100:
			time.Sleep(20 * time.Millisecond)
		case errors.Is(err, unix.EBUSY):
			return unix.Unmount(p, unix.MNT_DETACH)
		default:
			return fmt.Errorf("unmount %s: %w", p, err)
		}
	}
}

// applyUpper applies the changes an overlay's upper directory records to tree, a
// hard-link copy of its lower directory: changed and new entries are moved in,
// replacing what tree has there (never writing into it), whiteouts delete, opaque
// directories replace. upper is consumed.
func applyUpper(upper, tree string) error {
	if err := applyDir(upper, tree); err != nil {
		return err
	}
	return copyMeta(upper, tree)
}

func applyDir(up, dst string) error {
	entries, err := os.ReadDir(up)
	if err != nil {
		return err
	}
	for _, e := range entries {
		src, d := filepath.Join(up, e.Name()), filepath.Join(dst, e.Name())
		fi, err := os.Lstat(src)
		if err != nil {
			return err
		}
		if isWhiteout(fi) {
			if err := removeEntry(d); err != nil {
				return err
			}
			continue
		}
		if fi.IsDir() && !isOpaque(src) {
			if dfi, err := os.Lstat(d); err == nil && dfi.IsDir() {
				if err := applyDir(src, d); err != nil {
					return err
				}
				if err := copyMeta(src, d); err != nil {
					return err
				}
				continue
			}
		}
		if err := removeEntry(d); err != nil {
			return err
		}
		if err := os.Rename(src, d); err != nil {
			return err
		}
		if err := cleanMoved(d); err != nil {
			return err
		}
	}
	return nil
}

// cleanMoved removes overlay attributes and stray whiteouts from a moved entry.
func cleanMoved(p string) error {
	return filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeCharDevice != 0 {
			if fi, err := os.Lstat(q); err == nil && isWhiteout(fi) {
				return os.Remove(q)
			}
		}
		return stripOverlayXattrs(q)
	})
}

func isWhiteout(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && fi.Mode()&fs.ModeCharDevice != 0 && st.Rdev == 0
}

func isOpaque(p string) bool {
	buf := make([]byte, 8)
	n, err := unix.Lgetxattr(p, opaqueXattr, buf)
	return err == nil && n > 0 && buf[0] == 'y'
}

// listXattrs returns the names of p's extended attributes (p not followed).
func listXattrs(p string) ([]string, error) {
	n, err := unix.Llistxattr(p, nil)
	if err != nil || n == 0 {
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		return nil, err
	}
	buf := make([]byte, n)
	n, err = unix.Llistxattr(p, buf)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, s := range strings.Split(string(buf[:n]), "\x00") {
		if s != "" {
			names = append(names, s)
		}
	}
	return names, nil
}

func stripOverlayXattrs(p string) error {
	names, err := listXattrs(p)
	if err != nil {
		return err
	}
	for _, n := range names {
		if strings.HasPrefix(n, overlayXattrPrefix) {
			if err := unix.Lremovexattr(p, n); err != nil && !errors.Is(err, unix.ENODATA) {
				return err
			}
		}
	}
	return nil
}

// copyMeta gives dst the owner, mode, extended attributes (overlay's excepted) and
// times of src. Symbolic links get owner and times only.
func copyMeta(src, dst string) error {
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return err
	}
	if err := os.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		if err := unix.Fchmodat(unix.AT_FDCWD, dst, st.Mode&0o7777, 0); err != nil {
			return err
		}
		names, err := listXattrs(src)
		if err != nil {
			return err
		}
		for _, n := range names {
			if strings.HasPrefix(n, overlayXattrPrefix) {
				continue
			}
			if err := copyXattr(src, dst, n); err != nil {
				return err
			}
		}
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	return unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW)
}

func copyXattr(src, dst, name string) error {
	n, err := unix.Lgetxattr(src, name, nil)
	if err != nil {
		return err
	}
	buf := make([]byte, n)
	if n, err = unix.Lgetxattr(src, name, buf); err != nil {
		return err
	}
	return unix.Lsetxattr(dst, name, buf[:n], 0)
}
