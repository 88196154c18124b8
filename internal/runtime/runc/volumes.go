package runc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"lelantos.dev/lelantos/internal/runtime"
	"lelantos.dev/lelantos/internal/runtime/oci"
)

// mountVolumes mounts, for each writable mount of cfg (a volume), a clone of its
// source idmapped into ids under l.vols, and returns the mounts with those clones as
// their sources. Through the clone, a file the volume holds as uid 1000 shows inside
// as uid 1000, and the sandbox's writes are stored with its own ids: every sandbox
// mounting the volume, each in its own id range, and the host-side content API see
// the same owners. The clones carry nosuid and nodev.
//
// The clones live outside the sandbox's directory, so that removing the directory
// can never reach into a volume through one that is still mounted.
func mountVolumes(l layout, mounts []runtime.Mount, ids oci.IDRange) ([]runtime.Mount, error) {
	out := make([]runtime.Mount, len(mounts))
	copy(out, mounts)
	for i, m := range mounts {
		if !m.Writable {
			continue
		}
		dst := filepath.Join(l.vols, strconv.Itoa(i))
		if err := os.MkdirAll(dst, 0o711); err != nil {
			return nil, fmt.Errorf("mount volume at %s: %w", m.Destination, err)
		}
		if err := cloneIDMapped(m.Source, dst, ids); err != nil {
			return nil, fmt.Errorf("mount volume at %s: %w", m.Destination, err)
		}
		out[i].Source = dst
	}
	return out, nil
}

// cloneIDMapped mounts at dst a clone of the tree at src, idmapped into ids,
// writable, without set-user-ID programs or device nodes.
func cloneIDMapped(src, dst string, ids oci.IDRange) error {
	ns, err := userNamespace(ids)
	if err != nil {
		return err
	}
	defer ns.Close()
	fd, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return fmt.Errorf("open_tree %s: %w", src, err)
	}
	defer unix.Close(fd)
	attr := &unix.MountAttr{
		Attr_set:  unix.MOUNT_ATTR_IDMAP | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV,
		Userns_fd: uint64(ns.Fd()),
	}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, attr); err != nil {
		return fmt.Errorf("mount_setattr %s: %w", src, err)
	}
	if err := unix.MoveMount(fd, "", unix.AT_FDCWD, dst, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount %s to %s: %w", src, dst, err)
	}
	return nil
}

// unmountVolumes removes the volume clones of l and their directory. A clone that
// will not unmount keeps its directory (it is only ever removed empty).
func unmountVolumes(l layout) error {
	ents, err := os.ReadDir(l.vols)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		p := filepath.Join(l.vols, e.Name())
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
			continue
		}
		if err := os.Remove(p); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := os.Remove(l.vols); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
