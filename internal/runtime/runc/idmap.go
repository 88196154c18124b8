package runc

import (
	"errors"
	"fmt"
	"os"
	goruntime "runtime"
	"syscall"

	"golang.org/x/sys/unix"

	"lelantos.dev/lelantos/internal/runtime/oci"
)

// userNamespace returns a user namespace that maps ids 0..Size-1 to ids. The
// namespace is made by a child process that stops, traced, before it runs any code
// of its own; once its namespace is open the child is killed. The namespace lives
// on as long as the returned file or a mount idmapped with it does.
func userNamespace(ids oci.IDRange) (*os.File, error) {
	// The tracer of the child is this thread: keep the whole exchange on it.
	goruntime.LockOSThread()
	defer goruntime.UnlockOSThread()
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(ids.Host), Size: int(ids.Size)}}
	pid, err := syscall.ForkExec("/proc/self/exe", []string{"lelantos-userns"}, &syscall.ProcAttr{
		Sys: &syscall.SysProcAttr{
			Cloneflags:  unix.CLONE_NEWUSER,
			UidMappings: m,
			GidMappings: m,
			Ptrace:      true,
			Pdeathsig:   syscall.SIGKILL,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("make user namespace: %w", err)
	}
	defer func() {
		_ = unix.Kill(pid, unix.SIGKILL)
		var ws unix.WaitStatus
		for {
			if _, err := unix.Wait4(pid, &ws, unix.WALL, nil); !errors.Is(err, unix.EINTR) {
				return
			}
		}
	}()
	f, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", pid))
	if err != nil {
		return nil, fmt.Errorf("make user namespace: %w", err)
	}
	return f, nil
}

// mountIDMapped mounts at dst a clone of the tree at src whose owners are shifted
// into ids: a file of host root shows as owned by ids.Host, a file of uid 1000 as
// ids.Host+1000, and writes through the mount store the ids unshifted. The tree
// itself is not changed.
func mountIDMapped(src, dst string, ids oci.IDRange, readOnly bool) error {
	ns, err := userNamespace(ids)
	if err != nil {
		return fmt.Errorf("idmapped mount of %s: %w", src, err)
	}
	defer ns.Close()
	fd, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return fmt.Errorf("idmapped mount of %s: open_tree: %w", src, err)
	}
	defer unix.Close(fd)
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(ns.Fd())}
	if readOnly {
		attr.Attr_set |= unix.MOUNT_ATTR_RDONLY
	}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, attr); err != nil {
		return fmt.Errorf("idmapped mount of %s: mount_setattr: %w", src, err)
	}
	if err := unix.MoveMount(fd, "", unix.AT_FDCWD, dst, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("idmapped mount of %s: move_mount to %s: %w", src, dst, err)
	}
	return nil
}
