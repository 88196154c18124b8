package template

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// layerRecord is layer.json, next to a cached layer's rootfs/.
type layerRecord struct {
	Key       string    `json:"key"`
	Parent    string    `json:"parent"`
	Step      string    `json:"step"`
	CreatedAt time.Time `json:"createdAt"`
	// Config is set on layers made by FROM: the image's configuration.
	Config *imageConfig `json:"config,omitempty"`
	// Rootfs is the layer's tree (not stored).
	Rootfs string `json:"-"`
}

const layerFile = "layer.json"

func (b *Builder) layerDir(key string) string { return filepath.Join(b.dir, layersDir, key) }

// cachedLayer returns the complete layer with this key, marking it used now.
func (b *Builder) cachedLayer(key string) (*layerRecord, bool) {
	dir := b.layerDir(key)
	data, err := os.ReadFile(filepath.Join(dir, layerFile))
	if err != nil {
		return nil, false
	}
	var l layerRecord
	if json.Unmarshal(data, &l) != nil || l.Key != key {
		return nil, false
	}
	if fi, err := os.Lstat(filepath.Join(dir, "rootfs")); err != nil || !fi.IsDir() {
		return nil, false
	}
	now := time.Now()
	_ = os.Chtimes(filepath.Join(dir, layerFile), now, now) // last use, for PruneLayers
	l.Rootfs = filepath.Join(dir, "rootfs")
	return &l, true
}

// commitLayer moves tree (under tmp) into the cache as layer key. When another build
// committed the same key meanwhile, that layer is used and tree dropped.
func (b *Builder) commitLayer(tmp, key, parent, step, tree string, cfg *imageConfig) (*layerRecord, error) {
	stage := filepath.Join(tmp, "layer")
	if err := os.Mkdir(stage, 0o700); err != nil {
		return nil, fmt.Errorf("commit layer: %w", err)
	}
	if err := os.Rename(tree, filepath.Join(stage, "rootfs")); err != nil {
		return nil, fmt.Errorf("commit layer: %w", err)
	}
	l := &layerRecord{Key: key, Parent: parent, Step: step, CreatedAt: time.Now().UTC(), Config: cfg}
	if err := writeJSON(filepath.Join(stage, layerFile), l); err != nil {
		return nil, fmt.Errorf("commit layer: %w", err)
	}
	// The layer must be whole on disk before its name says it is.
	if err := syncFS(stage); err != nil {
		return nil, fmt.Errorf("commit layer: %w", err)
	}
	dir := b.layerDir(key)
	err := os.Rename(stage, dir)
	if err != nil {
		if done, ok := b.cachedLayer(key); ok {
			return done, nil
		}
		// A broken layer (its tree pruned, say) is in the way: set it aside.
		if rerr := os.Rename(dir, filepath.Join(tmp, "stale")); rerr == nil {
			err = os.Rename(stage, dir)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("commit layer: %w", err)
	}
	l.Rootfs = filepath.Join(dir, "rootfs")
	return l, nil
}

// childTree makes a tree under tmp that starts as a hard-link copy of parent (or
// empty when there is no parent) and returns its path.
func (b *Builder) childTree(ctx context.Context, parent, tmp string) (string, error) {
	tree := filepath.Join(tmp, "rootfs")
	if parent == "" {
		return tree, os.Mkdir(tree, 0o755)
	}
	return tree, linkTree(ctx, parent, tree)
}

// tempDir makes a private directory for one step or build.
func (b *Builder) tempDir(prefix string) (string, error) {
	d, err := os.MkdirTemp(filepath.Join(b.dir, tmpDir), prefix)
	if err != nil {
		return "", fmt.Errorf("make work directory: %w", err)
	}
	return d, nil
}

// removeTemp removes a work directory, unmounting what a crash may have left there.
func (b *Builder) removeTemp(dir string) {
	if err := os.RemoveAll(dir); err != nil {
		b.opts.Logger.Error("remove template build work directory", "dir", dir, "err", err)
	}
}

// syncFS flushes the file system holding p.
func syncFS(p string) error {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Syncfs(fd)
}

// writeJSON writes v to p atomically.
func writeJSON(p string, v any) error {
	data, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return err
	}
	tmp := p + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	serr := f.Sync()
	if err := errors.Join(werr, serr, f.Close()); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// readJSON reads p into v.
func readJSON(p string, v any) error {
	data, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}
