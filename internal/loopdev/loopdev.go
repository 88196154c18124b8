// Package loopdev binds files to Linux loop devices, the way the node gives a
// file system image (a build step's disk, a volume) a block device to mount.
package loopdev

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// attempts bounds the retries when another process takes the free device
// between asking for it and configuring it.
const attempts = 20

// Attach binds a free loop device to f, recording name as the device's file
// name, and returns the open device. The device clears itself once its last
// user (the caller's descriptor, a mount) is gone, so closing it after a mount
// leaves it to the mount.
func Attach(f *os.File, name string) (*os.File, error) {
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer ctl.Close()
	for range attempts {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, fmt.Errorf("find a free loop device: %w", err)
		}
		dev, err := os.OpenFile(fmt.Sprintf("/dev/loop%d", n), os.O_RDWR, 0)
		if err != nil {
			return nil, err
		}
		cfg := unix.LoopConfig{Fd: uint32(f.Fd())}
		cfg.Info.Flags = unix.LO_FLAGS_AUTOCLEAR
		copy(cfg.Info.File_name[:], name)
		err = unix.IoctlLoopConfigure(int(dev.Fd()), &cfg)
		if err == nil {
			return dev, nil
		}
		dev.Close()
		if !errors.Is(err, unix.EBUSY) {
			return nil, fmt.Errorf("configure loop device %d: %w", n, err)
		}
		// Another process took it between the two calls: ask again.
	}
	return nil, errors.New("no free loop device")
}
