package runc

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"

	"golang.org/x/sys/unix"

	"lelantos.dev/lelantos/internal/runtime"
	"lelantos.dev/lelantos/internal/runtime/oci"
)

// layout names the host paths of a sandbox's root filesystem, all in its directory.
type layout struct {
	// layer is the tmpfs capped at the disk size that holds upper and work.
	layer, upper, work string
	// lower is where the template tree is mounted idmapped while the overlay is made.
	lower string
	// root is the sandbox's root: the overlay, or with a writable root the idmapped
	// tree. It is outside the sandbox's directory, under a directory every user may
	// search: runc mounts it from inside the sandbox's user namespace, as an
	// unprivileged host user.
	root string
	// sys is a sysfs of the sandbox's network namespace, bound at /sys inside.
	sys     string
	meminfo string
	// vols holds the idmapped clones of the volumes the sandbox mounts, one
	// directory per mount; beside root, outside the sandbox's directory.
	vols string
}

// layoutOf is the layout of the sandbox whose directory is dir, with its root under
// rootsDir named after dir (so that runtimes with different sandbox directories can
// share rootsDir).
func layoutOf(rootsDir, dir string) layout {
	l := filepath.Join(dir, "layer")
	sum := sha256.Sum256([]byte(dir))
	return layout{
		layer: l, upper: filepath.Join(l, "upper"), work: filepath.Join(l, "work"),
		lower: filepath.Join(dir, "lower"), root: filepath.Join(rootsDir, hex.EncodeToString(sum[:12])),
		sys: filepath.Join(dir, "sys"), meminfo: filepath.Join(dir, "meminfo"),
		vols: filepath.Join(rootsDir, hex.EncodeToString(sum[:12])+"-volumes"),
	}
}

// mountLayout makes the sandbox's root: the template tree mounted idmapped into ids
// (read-only, as the lower layer of an overlay whose upper layer is a tmpfs capped at
// DiskSizeMB and owned by the sandbox's root), or with WritableRoot the tree itself,
// idmapped and writable. It also writes the sandbox's /proc/meminfo and, when the
// sandbox joins a network namespace, prepares it (see prepareNetNS).
func mountLayout(l layout, cfg runtime.Config, ids oci.IDRange) error {
	for _, d := range []string{l.root, l.sys} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("mount root: %w", err)
		}
	}
	if cfg.WritableRoot {
		if err := mountIDMapped(cfg.RootfsPath, l.root, ids, false); err != nil {
			return fmt.Errorf("mount root: %w", err)
		}
	} else if err := mountOverlay(l, cfg, ids); err != nil {
		return err
	}
	if cfg.NetNSPath != "" {
		if err := prepareNetNS(cfg.NetNSPath, l.sys); err != nil {
			return err
		}
	}
	return writeMeminfo(l.meminfo, cfg.MemoryMB)
}

func mountOverlay(l layout, cfg runtime.Config, ids oci.IDRange) error {
	for _, d := range []string{l.layer, l.lower} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("mount root: %w", err)
		}
	}
	if err := unix.Mount("tmpfs", l.layer, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("size=%dm,mode=0700", cfg.DiskSizeMB)); err != nil {
		return fmt.Errorf("mount layer: %w", err)
	}
	for _, d := range []string{l.upper, l.work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return fmt.Errorf("mount layer: %w", err)
		}
	}
	// The upper layer's root is the sandbox's "/": it belongs to root inside.
	if err := os.Chown(l.upper, int(ids.Host), int(ids.Host)); err != nil {
		return fmt.Errorf("mount layer: %w", err)
	}
	if err := mountIDMapped(cfg.RootfsPath, l.lower, ids, true); err != nil {
		return fmt.Errorf("mount root: %w", err)
	}
	// The overlay keeps a private clone of each layer's mount: the idmapped one
	// can go as soon as the overlay is there.
	defer func() { _ = unix.Unmount(l.lower, unix.MNT_DETACH) }()
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", l.lower, l.upper, l.work)
	if err := unix.Mount("overlay", l.root, "overlay", 0, opts); err != nil {
		return fmt.Errorf("mount root overlay: %w", err)
	}
	return nil
}

// prepareNetNS readies the engine's network namespace at netns for a sandbox in a
// user namespace, which holds no capability over it: it mounts the namespace's
// sysfs at dir (the sandbox cannot mount sysfs for a namespace it does not own, so
// it gets a read-only bind of this one), and lets every group open ICMP echo
// sockets there, as raw sockets need CAP_NET_RAW over the namespace: ping works.
func prepareNetNS(netns, dir string) error {
	done := make(chan error, 1)
	go func() {
		// The thread enters the namespace and is never handed back to the Go
		// scheduler: it ends with this goroutine.
		goruntime.LockOSThread()
		fd, err := unix.Open(netns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- fmt.Errorf("prepare network namespace: %w", err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("prepare network namespace: enter %s: %w", netns, err)
			return
		}
		if err := unix.Mount("sysfs", dir, "sysfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			done <- fmt.Errorf("prepare network namespace: mount sysfs: %w", err)
			return
		}
		// /proc/sys/net shows the network namespace of the thread that opens it.
		if err := os.WriteFile("/proc/sys/net/ipv4/ping_group_range", []byte("0 2147483647"), 0); err != nil {
			done <- fmt.Errorf("prepare network namespace: %w", err)
			return
		}
		done <- nil
	}()
	return <-done
}

// writeMeminfo writes the /proc/meminfo a sandbox of memoryMB sees.
func writeMeminfo(path string, memoryMB int) error {
	kb := memoryMB * 1024
	info := fmt.Sprintf("MemTotal:       %d kB\nMemFree:        %d kB\nMemAvailable:   %d kB\nBuffers:               0 kB\nCached:                0 kB\nSwapTotal:             0 kB\nSwapFree:              0 kB\n", kb, kb, kb)
	if err := os.WriteFile(path, []byte(info), 0o444); err != nil {
		return fmt.Errorf("write meminfo: %w", err)
	}
	return nil
}

// unmountLayout removes every mount of the layout, and the root's mount point;
// what is not there is skipped.
func unmountLayout(l layout) error {
	errs := []error{unmountVolumes(l)}
	for _, m := range []string{l.sys, l.root, l.lower, l.layer} {
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m, err))
		}
	}
	if err := os.Remove(l.root); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("remove root mount point: %w", err))
	}
	return errors.Join(errs...)
}

// searchableDir makes dir, mode 0711, and checks that every user may search it and
// each directory above it.
func searchableDir(dir string) error {
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		return err
	}
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%s (mode %v) cannot be searched by other users", d, fi.Mode().Perm())
		}
		if d == "/" {
			return nil
		}
	}
}
