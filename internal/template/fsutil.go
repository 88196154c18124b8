package template

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// owner is a numeric file owner.
type owner struct{ UID, GID int }

// linkTree makes dst (absent) a copy of the tree src whose files are hard links to
// src's: directories are new, file contents and inodes shared. Nothing may write
// into a shared file afterwards; the builder only ever replaces files. Across file
// systems, or when a file has as many links as the file system allows, it copies
// instead (with reflinks where the file system has them).
func linkTree(ctx context.Context, src, dst string) error {
	if sameDevice(src, filepath.Dir(dst)) {
		err := cp(ctx, "-al", src, dst)
		if err == nil || ctx.Err() != nil {
			return err
		}
	}
	return cp(ctx, "-a --reflink=auto", src, dst)
}

func cp(ctx context.Context, flags, src, dst string) error {
	args := append(strings.Fields(flags), "--", src, dst)
	out, err := exec.CommandContext(ctx, "cp", args...).CombinedOutput()
	if err != nil {
		_ = os.RemoveAll(dst)
		return fmt.Errorf("copy tree %s: cp %s: %v: %s", src, flags, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func sameDevice(a, b string) bool {
	var sa, sb unix.Stat_t
	if unix.Stat(a, &sa) != nil || unix.Stat(b, &sb) != nil {
		return false
	}
	return sa.Dev == sb.Dev
}

// resolveIn returns the host path of p in the tree at root, following symbolic links
// the way a process whose root is the tree would: the result never leaves root.
// Components that do not exist are kept as written (they may be created). With
// followLast false, a final symbolic link is not followed.
func resolveIn(root, p string, followLast bool) (string, error) {
	parts := strings.Split(path.Clean("/"+p), "/")
	cur := "/"
	links := 0
	for len(parts) > 0 {
		c := parts[0]
		parts = parts[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, c)
		if len(parts) == 0 && !followLast {
			cur = next
			break
		}
		fi, err := os.Lstat(filepath.Join(root, next))
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			cur = path.Join(append([]string{next}, parts...)...)
			break
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if links++; links > 40 {
			return "", fmt.Errorf("resolve %s: %w", p, syscall.ELOOP)
		}
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if path.IsAbs(target) {
			cur = "/"
		}
		parts = append(strings.Split(target, "/"), parts...)
	}
	return filepath.Join(root, path.Clean("/"+cur)), nil
}

// isDirIn reports whether p is a directory in the tree at root.
func isDirIn(root, p string) bool {
	r, err := resolveIn(root, p, true)
	if err != nil {
		return false
	}
	fi, err := os.Lstat(r)
	return err == nil && fi.IsDir()
}

// readFileIn reads the regular file p of the tree at root.
func readFileIn(root, p string) ([]byte, error) {
	r, err := resolveIn(root, p, true)
	if err != nil {
		return nil, err
	}
	fi, err := os.Lstat(r)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", p)
	}
	return os.ReadFile(r)
}

// mkdirAllIn makes directory p and its missing parents in the tree at root, new ones
// with mode and owner, and returns its host path.
func mkdirAllIn(root, p string, mode fs.FileMode, o owner) (string, error) {
	r, err := resolveIn(root, p, true)
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(root, r)
	if err != nil || strings.HasPrefix(rel, "..") {
		return "", fmt.Errorf("%s resolves outside the tree", p)
	}
	cur := root
	for _, c := range strings.Split(rel, string(filepath.Separator)) {
		if c == "." || c == "" {
			continue
		}
		cur = filepath.Join(cur, c)
		fi, err := os.Lstat(cur)
		switch {
		case err == nil && fi.IsDir():
			continue
		case err == nil:
			return "", fmt.Errorf("%s: %w", p, syscall.ENOTDIR)
		case !errors.Is(err, fs.ErrNotExist):
			return "", err
		}
		if err := os.Mkdir(cur, mode); err != nil {
			return "", err
		}
		if err := os.Lchown(cur, o.UID, o.GID); err != nil {
			return "", err
		}
		if err := os.Chmod(cur, mode); err != nil { // not masked by the umask
			return "", err
		}
	}
	return r, nil
}

// removeEntry removes what is at the host path p, a tree if it is a directory, and
// succeeds when there is nothing.
func removeEntry(p string) error {
	if err := os.RemoveAll(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
