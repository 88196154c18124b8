package template

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"lelantos.dev/lelantos/internal/loopdev"
)

// stepDisk is the file system a RUN step's changes go to: a sparse file of the
// step's disk size, formatted as ext4 and mounted through a loop device. The step
// gets ENOSPC past the size, and the file never grows past it on the host. The loop
// device is set to clear itself when the file system is unmounted.
type stepDisk struct {
	image, mnt string
	sizeMB     int
}

// mountStepDisk makes the sparse file image of sizeMB MiB, formats it and mounts it
// at mnt (an existing directory). On error nothing of it is left mounted.
func mountStepDisk(ctx context.Context, image, mnt string, sizeMB int) (_ *stepDisk, err error) {
	d := &stepDisk{image: image, mnt: mnt, sizeMB: sizeMB}
	defer func() {
		if err != nil {
			_ = os.Remove(image)
		}
	}()
	f, err := os.OpenFile(image, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("step disk: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(int64(sizeMB) << 20); err != nil {
		return nil, fmt.Errorf("step disk: %w", err)
	}
	// No journal and no reserved blocks: the file system lives for one step.
	out, err := exec.CommandContext(ctx, "mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal",
		"-E", "lazy_itable_init=1,nodiscard", image).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("step disk: mkfs.ext4: %v: %s", err, strings.TrimSpace(string(out)))
	}
	loop, err := loopdev.Attach(f, filepath.Base(f.Name()))
	if err != nil {
		return nil, fmt.Errorf("step disk: %w", err)
	}
	defer loop.Close() // the mount holds the device; it clears itself on unmount
	if err := unix.Mount(loop.Name(), mnt, "ext4", unix.MS_NODEV|unix.MS_NOSUID, ""); err != nil {
		_ = unix.IoctlSetInt(int(loop.Fd()), unix.LOOP_CLR_FD, 0)
		return nil, fmt.Errorf("step disk: mount %s: %w", loop.Name(), err)
	}
	return d, nil
}

// full reports whether the step's file system is (nearly) out of space or inodes.
func (d *stepDisk) full() bool {
	var st unix.Statfs_t
	if err := unix.Statfs(d.mnt, &st); err != nil {
		return false
	}
	return st.Bavail*uint64(st.Bsize) < 1<<20 || st.Ffree < 16
}

// close unmounts the file system (its loop device clears itself) and removes the
// file.
func (d *stepDisk) close() error {
	err := unmount(d.mnt)
	if rerr := os.Remove(d.image); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	if err != nil {
		return fmt.Errorf("remove step disk: %w", err)
	}
	return nil
}
