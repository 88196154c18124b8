package volume

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// MinSizeMB is the smallest volume Local makes: ext4 and its journal need room.
const MinSizeMB = 16

// Local keeps the volumes of one node under a directory, each as
//
//	<dir>/<id>/image     a sparse ext4 image of the volume's size
//	<dir>/<id>/mnt       where it is loop-mounted (nosuid, nodev) while in use
//	<dir>/<id>/mnt/data  the volume's content, owned by DefaultUID:DefaultGID
//
// A volume is mounted on first use after the node starts (Attach, Open) and stays
// mounted until Close or Delete; the content lives in the image, so nothing of it is
// lost when the mount goes. Its methods are safe for concurrent use.
type Local struct {
	dir string
	// mu serializes mounting and unmounting.
	mu sync.Mutex
}

// dataDir is the directory of a volume's image that holds its content; the image's
// own top keeps the file system's lost+found out of sight.
const dataDir = "data"

// NewLocal keeps volumes under dir, made (private to root) when missing. The host
// needs mkfs.ext4 and loop devices.
func NewLocal(dir string) (*Local, error) {
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("local volumes: directory %q must be absolute", dir)
	}
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		return nil, fmt.Errorf("local volumes: %w (install e2fsprogs)", err)
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		return nil, fmt.Errorf("local volumes: loop devices: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("local volumes: %w", err)
	}
	return &Local{dir: filepath.Clean(dir)}, nil
}

// Dir is the directory the volumes are kept under.
func (l *Local) Dir() string { return l.dir }

func (l *Local) paths(id string) (dir, image, mnt string) {
	dir = filepath.Join(l.dir, id)
	return dir, filepath.Join(dir, "image"), filepath.Join(dir, "mnt")
}

// Create makes volume id of sizeMB MiB (at least MinSizeMB), empty but for its top
// directory, and leaves it mounted. An existing id is ErrExists. On error nothing of
// it is left.
func (l *Local) Create(ctx context.Context, id string, sizeMB int) (err error) {
	if err := checkID(id); err != nil {
		return fmt.Errorf("create volume: %w", err)
	}
	if sizeMB < MinSizeMB {
		return fmt.Errorf("create volume %s: size %d MiB is below %d: %w", id, sizeMB, MinSizeMB, ErrInvalid)
	}
	dir, image, mnt := l.paths(id)
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create volume %s: %w", id, ErrExists)
		}
		return fmt.Errorf("create volume %s: %w", id, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	defer func() {
		if err != nil {
			_ = unmount(mnt)
			_ = os.RemoveAll(dir)
		}
	}()
	if err := os.Mkdir(mnt, 0o700); err != nil {
		return fmt.Errorf("create volume %s: %w", id, err)
	}
	if err := makeImage(ctx, image, sizeMB); err != nil {
		return fmt.Errorf("create volume %s: %w", id, err)
	}
	if err := mountImage(image, mnt); err != nil {
		return fmt.Errorf("create volume %s: %w", id, err)
	}
	data := filepath.Join(mnt, dataDir)
	if err := os.Mkdir(data, 0o755); err != nil {
		return fmt.Errorf("create volume %s: %w", id, err)
	}
	if err := os.Chown(data, DefaultUID, DefaultGID); err != nil {
		return fmt.Errorf("create volume %s: %w", id, err)
	}
	if err := os.Chmod(data, 0o755); err != nil {
		return fmt.Errorf("create volume %s: %w", id, err)
	}
	return nil
}

// mounted mounts volume id if it is not, and returns its mount point. Call with l.mu
// held.
func (l *Local) mounted(id string) (string, error) {
	if err := checkID(id); err != nil {
		return "", err
	}
	_, image, mnt := l.paths(id)
	if _, err := os.Stat(image); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("volume %s: %w", id, ErrNotFound)
		}
		return "", fmt.Errorf("volume %s: %w", id, err)
	}
	m, err := isMount(mnt)
	if err != nil {
		return "", fmt.Errorf("volume %s: %w", id, err)
	}
	if !m {
		if err := mountImage(image, mnt); err != nil {
			return "", fmt.Errorf("volume %s: %w", id, err)
		}
	}
	return mnt, nil
}

// Attach makes volume id's content available on this node and returns its host
// directory, for sandboxes to bind-mount. It stays valid until Close or Delete.
// An unknown id is ErrNotFound.
func (l *Local) Attach(ctx context.Context, id string) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	mnt, err := l.mounted(id)
	if err != nil {
		return "", fmt.Errorf("attach volume: %w", err)
	}
	var st, top unix.Stat_t
	data := filepath.Join(mnt, dataDir)
	if err := unix.Lstat(data, &st); err != nil {
		return "", fmt.Errorf("attach volume %s: %w", id, err)
	}
	if err := unix.Lstat(mnt, &top); err != nil {
		return "", fmt.Errorf("attach volume %s: %w", id, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Dev != top.Dev {
		return "", fmt.Errorf("attach volume %s: %s is not the volume's directory", id, data)
	}
	return data, nil
}

// Open opens volume id's content for the content API. An unknown id is ErrNotFound.
func (l *Local) Open(ctx context.Context, id string) (*Tree, error) {
	l.mu.Lock()
	mnt, err := l.mounted(id)
	l.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("open volume: %w", err)
	}
	t, err := openSub(mnt, dataDir)
	if err != nil {
		return nil, fmt.Errorf("open volume %s: %w", id, err)
	}
	return t, nil
}

// Delete removes volume id and its content; sandboxes still holding it keep their
// files until they end. An unknown id is ErrNotFound.
func (l *Local) Delete(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return fmt.Errorf("delete volume: %w", err)
	}
	dir, _, mnt := l.paths(id)
	if _, err := os.Stat(dir); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("delete volume %s: %w", id, ErrNotFound)
		}
		return fmt.Errorf("delete volume %s: %w", id, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := unmount(mnt); err != nil {
		return fmt.Errorf("delete volume %s: %w", id, err)
	}
	// Only once nothing is mounted there may the directory go: a removal through a
	// mount would empty the volume of whoever still holds it.
	if m, err := isMount(mnt); err == nil && m {
		return fmt.Errorf("delete volume %s: %s is still mounted", id, mnt)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("delete volume %s: %w", id, err)
	}
	return nil
}

// List returns the IDs of the volumes kept here.
func (l *Local) List(ctx context.Context) ([]string, error) {
	ents, err := os.ReadDir(l.dir)
	if err != nil {
		return nil, fmt.Errorf("list volumes: %w", err)
	}
	ids := []string{}
	for _, e := range ents {
		if e.IsDir() && checkID(e.Name()) == nil {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

// Close unmounts every volume from the host; their next use mounts them again.
// Sandboxes that mount a volume keep it mounted in their own mount namespaces until
// they end, and a later mount shares that file system rather than making another.
func (l *Local) Close() error {
	ids, err := l.List(context.Background())
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for _, id := range ids {
		_, _, mnt := l.paths(id)
		errs = append(errs, unmount(mnt))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close volumes: %w", err)
	}
	return nil
}
