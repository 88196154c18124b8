package volume

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Dirs keeps each volume as the directory <root>/<id>, for a file system that
// enforces volume sizes itself (project quotas, a network file system's own): Dirs
// does not. With root on a file system every node mounts at the same path, a
// volume's sandboxes may run on any node. Its methods are safe for concurrent use.
type Dirs struct {
	root string
}

// NewDirs keeps volumes under root, made (private to root) when missing.
func NewDirs(root string) (*Dirs, error) {
	if !filepath.IsAbs(root) {
		return nil, fmt.Errorf("volume directories: %q must be absolute", root)
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("volume directories: %w", err)
	}
	return &Dirs{root: filepath.Clean(root)}, nil
}

// path is the directory of volume id.
func (d *Dirs) path(id string) (string, error) {
	if err := checkID(id); err != nil {
		return "", err
	}
	return filepath.Join(d.root, id), nil
}

// Create makes the empty volume id; sizeMB is for the file system to enforce. An
// existing id is ErrExists.
func (d *Dirs) Create(ctx context.Context, id string, sizeMB int) error {
	p, err := d.path(id)
	if err != nil {
		return fmt.Errorf("create volume: %w", err)
	}
	if err := os.Mkdir(p, 0o755); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create volume %s: %w", id, ErrExists)
		}
		return fmt.Errorf("create volume %s: %w", id, err)
	}
	if err := errors.Join(os.Chown(p, DefaultUID, DefaultGID), os.Chmod(p, 0o755)); err != nil {
		_ = os.Remove(p)
		return fmt.Errorf("create volume %s: %w", id, err)
	}
	return nil
}

// existing returns the directory of volume id, ErrNotFound when it has none.
func (d *Dirs) existing(id string) (string, error) {
	p, err := d.path(id)
	if err != nil {
		return "", err
	}
	fi, err := os.Lstat(p)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("volume %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("volume %s: %w", id, err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("volume %s: %s is not a directory", id, p)
	}
	return p, nil
}

// Attach returns volume id's directory, for sandboxes to bind-mount.
func (d *Dirs) Attach(ctx context.Context, id string) (string, error) {
	p, err := d.existing(id)
	if err != nil {
		return "", fmt.Errorf("attach volume: %w", err)
	}
	return p, nil
}

// Open opens volume id's content for the content API.
func (d *Dirs) Open(ctx context.Context, id string) (*Tree, error) {
	if _, err := d.existing(id); err != nil {
		return nil, fmt.Errorf("open volume: %w", err)
	}
	t, err := openSub(d.root, id)
	if err != nil {
		return nil, fmt.Errorf("open volume %s: %w", id, err)
	}
	return t, nil
}

// Delete removes volume id and its content (os.RemoveAll never follows a link out).
func (d *Dirs) Delete(ctx context.Context, id string) error {
	p, err := d.existing(id)
	if err != nil {
		return fmt.Errorf("delete volume: %w", err)
	}
	if err := os.RemoveAll(p); err != nil {
		return fmt.Errorf("delete volume %s: %w", id, err)
	}
	return nil
}

// List returns the IDs of the volumes kept here.
func (d *Dirs) List(ctx context.Context) ([]string, error) {
	ents, err := os.ReadDir(d.root)
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

// Close releases nothing: Dirs holds nothing open.
func (d *Dirs) Close() error { return nil }
