package files

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// errNotRegular marks a path that names something other than a regular file or
// a directory (a device, a FIFO, a socket), which /files neither reads nor writes.
var errNotRegular = errors.New("not a regular file")

// openRegular opens path with flag (and perm for a created file) and returns it
// only when it is a regular file: a directory gives syscall.EISDIR, anything
// else errNotRegular. The open never blocks on a FIFO or a device, and it follows
// symlinks as the kernel does for the calling thread's credentials.
func openRegular(path string, flag int, perm fs.FileMode) (*os.File, error) {
	f, _, err := openRegularInfo(path, flag, perm)
	return f, err
}

// openRegularInfo is openRegular that also returns what the open file's stat
// said.
func openRegularInfo(path string, flag int, perm fs.FileMode) (*os.File, fs.FileInfo, error) {
	f, err := os.OpenFile(path, flag|unix.O_NONBLOCK|unix.O_CLOEXEC, perm)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, nil, err
	}
	switch {
	case st.IsDir():
		_ = f.Close()
		return nil, nil, &fs.PathError{Op: "open", Path: path, Err: syscall.EISDIR}
	case !st.Mode().IsRegular():
		_ = f.Close()
		return nil, nil, &fs.PathError{Op: "open", Path: path, Err: errNotRegular}
	}
	if err := blocking(f); err != nil {
		_ = f.Close()
		return nil, nil, err
	}
	return f, st, nil
}

// blocking clears O_NONBLOCK on f.
func blocking(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var opErr error
	if err := rc.Control(func(fd uintptr) { opErr = unix.SetNonblock(int(fd), false) }); err != nil {
		return err
	}
	if opErr != nil {
		return fmt.Errorf("clear O_NONBLOCK on %s: %w", f.Name(), opErr)
	}
	return nil
}
