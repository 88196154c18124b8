package volume

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

// makeImage makes the sparse file image of sizeMB MiB and formats it as ext4: with a
// journal (a volume outlives crashes), no reserved blocks (root inside a sandbox gets
// no more room than anyone), and nothing written ahead that the file system can
// write later, so the file stays sparse.
func makeImage(ctx context.Context, image string, sizeMB int) error {
	f, err := os.OpenFile(image, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	err = f.Truncate(int64(sizeMB) << 20)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, "mkfs.ext4", "-q", "-F", "-m", "0",
		"-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard", image).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mkfs.ext4: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// mountImage mounts the file system of image at mnt, without set-user-ID programs or
// device nodes. A loop device already backed by image (its file system still
// mounted somewhere, say in a sandbox's mount namespace after the node restarted) is
// mounted again rather than a second one made: two loop devices over one image would
// be two file systems writing the same blocks.
func mountImage(image, mnt string) error {
	for range 5 {
		dev, err := loopOf(image)
		if err != nil {
			return err
		}
		var f *os.File
		if dev == "" {
			if f, err = attachLoop(image); err != nil {
				return err
			}
			dev = f.Name()
		}
		err = unix.Mount(dev, mnt, "ext4", unix.MS_NOSUID|unix.MS_NODEV, "")
		if f != nil {
			if err != nil {
				_ = unix.IoctlSetInt(int(f.Fd()), unix.LOOP_CLR_FD, 0)
			}
			f.Close() // the mount holds the device; it clears itself when unmounted
		}
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.ENXIO) && !errors.Is(err, unix.ENODEV) {
			return fmt.Errorf("mount %s: %w", dev, err)
		}
		// The device cleared itself between finding it and mounting it: again.
	}
	return fmt.Errorf("mount %s: its loop device kept going away", image)
}

// loopOf returns the loop device backed by image, or "" when there is none.
func loopOf(image string) (string, error) {
	files, err := filepath.Glob("/sys/block/loop*/loop/backing_file")
	if err != nil {
		return "", err
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // cleared meanwhile
		}
		if strings.TrimSuffix(string(b), "\n") == image {
			return "/dev/" + filepath.Base(filepath.Dir(filepath.Dir(p))), nil
		}
	}
	return "", nil
}

// attachLoop binds a free loop device to image; it clears itself once unused.
func attachLoop(image string) (*os.File, error) {
	img, err := os.OpenFile(image, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	return loopdev.Attach(img, image)
}

// isMount reports whether dir is a mount point: it sits on another device than its
// parent.
func isMount(dir string) (bool, error) {
	var st, parent unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return false, err
	}
	if err := unix.Lstat(filepath.Dir(dir), &parent); err != nil {
		return false, err
	}
	return st.Dev != parent.Dev, nil
}

// unmount detaches the file system mounted at dir, if any; it is gone for good once
// nothing holds it any more.
// Mounts stacked on dir go one by one.
func unmount(dir string) error {
	for range 16 {
		m, err := isMount(dir)
		if errors.Is(err, os.ErrNotExist) || (err == nil && !m) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("unmount %s: %w", dir, err)
		}
	}
	return fmt.Errorf("unmount %s: still mounted", dir)
}
