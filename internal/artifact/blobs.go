package artifact

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Blobs keeps streams by content address in a directory, as files
// DIR/<hex>: the images of sandboxes paused on other nodes, kept by the
// control plane so that the sandboxes can resume elsewhere.
type Blobs struct {
	dir string
}

// NewBlobs returns the blobs of dir (created).
func NewBlobs(dir string) (*Blobs, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("blobs: %w", err)
	}
	return &Blobs{dir: dir}, nil
}

// path is where blob name is kept.
func (b *Blobs) path(name string) (string, error) {
	if err := CheckName(name); err != nil {
		return "", err
	}
	return filepath.Join(b.dir, strings.TrimPrefix(name, "sha256:")), nil
}

// Put keeps the stream r and returns its name.
func (b *Blobs) Put(ctx context.Context, r io.Reader) (string, error) {
	f, err := os.CreateTemp(b.dir, "partial-")
	if err != nil {
		return "", fmt.Errorf("keep blob: %w", err)
	}
	defer os.Remove(f.Name()) // after the rename, a no-op
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(f, h), readerCtx{ctx, r})
	if err = errors.Join(err, f.Close()); err != nil {
		return "", fmt.Errorf("keep blob: %w", err)
	}
	name := "sha256:" + hex.EncodeToString(h.Sum(nil))
	dst, _ := b.path(name)
	if err := os.Rename(f.Name(), dst); err != nil {
		return "", fmt.Errorf("keep blob: %w", err)
	}
	return name, nil
}

// Open returns blob name, ErrNotFound when it is not kept.
func (b *Blobs) Open(name string) (*os.File, error) {
	p, err := b.path(name)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return f, err
}

// Image returns blob name to read, for a node in the control plane's own
// process (agent.Images).
func (b *Blobs) Image(_ context.Context, name string) (io.ReadCloser, error) {
	return b.Open(name)
}

// Drop removes blob name; one not kept is no error.
func (b *Blobs) Drop(name string) error {
	p, err := b.path(name)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("drop blob %s: %w", name, err)
	}
	return nil
}

// readerCtx stops reading when its context ends.
type readerCtx struct {
	ctx context.Context
	r   io.Reader
}

func (r readerCtx) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}
