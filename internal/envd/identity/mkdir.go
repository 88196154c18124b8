package identity

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// MkdirAll creates dir and its missing parents with mode 0755 (less the umask),
// as the calling thread's credentials allow: call it inside Do, and what it
// creates is the user's. Unlike os.MkdirAll it reports why an existing path
// cannot be used (e.g. a symlink to a directory the user may not search gives
// the permission error, not "file exists"); a non-directory along the way gives
// syscall.ENOTDIR.
func MkdirAll(dir string) error {
	st, err := os.Stat(dir)
	switch {
	case err == nil && st.IsDir():
		return nil
	case err == nil:
		return &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := MkdirAll(parent); err != nil {
			return err
		}
	}
	err = os.Mkdir(dir, 0o755)
	if errors.Is(err, fs.ErrExist) {
		// Made meanwhile, or a dangling symlink: use it only if it is a directory now.
		if st, serr := os.Stat(dir); serr != nil {
			return serr
		} else if !st.IsDir() {
			return &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
		}
		return nil
	}
	return err
}
