package template

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"lelantos.dev/lelantos/internal/saferoot"
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
	if err := unix.Mount("overlay", merged, "overlay", unix.MS_NODEV|unix.MS_NOSUID, opts); err != nil {
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
// hard-link copy of the overlay's lower directory: changed and new entries are
// copied in, replacing what tree has there (never writing into it), whiteouts
// delete, opaque directories replace. Hard links among the new files are kept.
// The upper directory was written by the step's code: it is read as untrusted, its
// device nodes are left out (skipped counts them) and overlay's attributes dropped.
func applyUpper(upper, tree *saferoot.Root) (skipped int, err error) {
	a := applier{up: upper, tree: tree, links: map[[2]uint64]string{}}
	if err := a.dir("."); err != nil {
		return a.skipped, err
	}
	return a.skipped, copyMeta(upper, tree, ".")
}

type applier struct {
	up, tree *saferoot.Root
	links    map[[2]uint64]string // device and inode of a copied file -> its name
	skipped  int
}

func (a *applier) dir(dir string) error {
	ents, err := a.up.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		name := path.Join(dir, e.Name())
		fi, err := a.up.Lstat(name)
		if err != nil {
			return err
		}
		if isWhiteout(fi) {
			if err := a.tree.RemoveAll(name); err != nil {
				return err
			}
			continue
		}
		if fi.IsDir() && !isOpaque(a.up, name) {
			if dfi, err := a.tree.Lstat(name); err == nil && dfi.IsDir() {
				if err := a.dir(name); err != nil {
					return err
				}
				if err := copyMeta(a.up, a.tree, name); err != nil {
					return err
				}
				continue
			}
		}
		if err := a.tree.RemoveAll(name); err != nil {
			return err
		}
		if err := a.copy(name, fi); err != nil {
			return err
		}
	}
	return nil
}

// copy copies the upper entry name (and what is below it) to the tree, where
// nothing is at name.
func (a *applier) copy(name string, fi fs.FileInfo) error {
	st := statOf(fi)
	switch m := fi.Mode(); {
	case isWhiteout(fi):
		return nil // in a new directory: nothing below to hide
	case m.IsDir():
		if err := a.tree.Mkdir(name, 0o700); err != nil {
			return err
		}
		ents, err := a.up.ReadDir(name)
		if err != nil {
			return err
		}
		for _, e := range ents {
			c := path.Join(name, e.Name())
			cfi, err := a.up.Lstat(c)
			if err != nil {
				return err
			}
			if err := a.copy(c, cfi); err != nil {
				return err
			}
		}
	case m&fs.ModeSymlink != 0:
		target, err := a.up.Readlink(name)
		if err != nil {
			return err
		}
		if err := a.tree.Symlink(target, name); err != nil {
			return err
		}
	case m.IsRegular():
		key := [2]uint64{st.Dev, st.Ino}
		if first, ok := a.links[key]; ok && st.Nlink > 1 {
			return a.tree.Link(first, name) // shares the first name's metadata
		}
		if err := copyFile(a.up, name, a.tree, name); err != nil {
			return err
		}
		if st.Nlink > 1 {
			a.links[key] = name
		}
	case m&fs.ModeNamedPipe != 0:
		if err := a.tree.Mkfifo(name, 0o600); err != nil {
			return err
		}
	default: // devices and sockets
		a.skipped++
		return nil
	}
	return copyMeta(a.up, a.tree, name)
}

// copyFile copies the regular file sname of src to the new file dname of dst.
func copyFile(src *saferoot.Root, sname string, dst *saferoot.Root, dname string) error {
	in, err := src.Open(sname)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := dst.Create(dname, 0o600)
	if err != nil {
		return err
	}
	_, cerr := io.Copy(out, in)
	return errors.Join(cerr, out.Close())
}

func isWhiteout(fi fs.FileInfo) bool {
	return fi.Mode()&fs.ModeCharDevice != 0 && statOf(fi).Rdev == 0
}

func isOpaque(r *saferoot.Root, name string) bool {
	v, err := r.Getxattr(name, opaqueXattr)
	return err == nil && len(v) > 0 && v[0] == 'y'
}

// copyMeta gives the entry name of dst the owner, mode, extended attributes
// (overlay's excepted) and times of the entry name of src. Symbolic links get owner
// and times only.
func copyMeta(src, dst *saferoot.Root, name string) error {
	fi, err := src.Lstat(name)
	if err != nil {
		return err
	}
	st := statOf(fi)
	if err := dst.Lchown(name, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		if err := dst.Chmod(name, fs.FileMode(st.Mode&0o7777)); err != nil {
			return err
		}
		names, err := src.Listxattr(name)
		if err != nil {
			return err
		}
		for _, n := range names {
			if strings.HasPrefix(n, overlayXattrPrefix) {
				continue
			}
			v, err := src.Getxattr(name, n)
			if err != nil {
				return err
			}
			if err := dst.Setxattr(name, n, v); err != nil && !errors.Is(err, unix.ENOTSUP) {
				return err
			}
		}
	}
	return dst.Lchtimes(name, time.Unix(st.Atim.Unix()), time.Unix(st.Mtim.Unix()))
}
