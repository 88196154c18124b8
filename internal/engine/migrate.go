package engine

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"lelantos.dev/lelantos/internal/saferoot"
)

// imageLimits bound an imported image: a checkpoint of the largest sandbox
// a node takes, its memory and its writable layer.
var imageLimits = saferoot.Limits{Bytes: 256 << 30, Entries: 1 << 20}

// ExportPaused writes the image of paused sandbox id, its memory and files as
// its pause saved them, to w as a tar stream laid out as a snapshot's
// directory (ImportSnapshot), so that another node can start it. A sandbox
// paused without its memory, or not paused, is ErrState. The sandbox stays
// as it is.
func (e *Engine) ExportPaused(ctx context.Context, id string, w io.Writer) error {
	b, err := e.lookup(id)
	if err != nil {
		return fmt.Errorf("export sandbox %s: %w", id, err)
	}
	defer b.op.Unlock()
	rec := b.record()
	if rec.State != StatePaused || rec.Image == "" {
		return fmt.Errorf("export sandbox %s: it is %s without a memory image: %w", id, rec.State, ErrState)
	}
	s := rec.Spec
	sr := snapshotRecord{
		SnapshotInfo: SnapshotInfo{ID: id, SourceID: s.ID, RootfsPath: s.RootfsPath, RuntimeClass: s.RuntimeClass,
			CPUCount: s.CPUCount, MemoryMB: s.MemoryMB, DiskSizeMB: s.DiskSizeMB, SizeBytes: dirSize(rec.Image),
			CreatedAt: time.Now().UTC()},
		Spec: s, EnvdDir: rec.EnvdDir,
	}
	raw, err := json.Marshal(sr)
	if err != nil {
		return fmt.Errorf("export sandbox %s: %w", id, err)
	}
	tw := tar.NewWriter(w)
	if err := tw.WriteHeader(&tar.Header{Name: snapshotRecordFile, Mode: 0o600, Size: int64(len(raw)), Typeflag: tar.TypeReg}); err != nil {
		return fmt.Errorf("export sandbox %s: %w", id, err)
	}
	if _, err := tw.Write(raw); err != nil {
		return fmt.Errorf("export sandbox %s: %w", id, err)
	}
	if err := exportDir(ctx, tw, rec.Image, snapshotImageDir); err != nil {
		return fmt.Errorf("export sandbox %s: %w", id, err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("export sandbox %s: %w", id, err)
	}
	return nil
}

// exportDir writes the tree at dir to tw, its entries named below prefix
// ("" for the stream's top, which then gets no entry of its own).
func exportDir(ctx context.Context, tw *tar.Writer, dir, prefix string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || ctx.Err() != nil {
			return errors.Join(err, ctx.Err())
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || (rel == "." && prefix == "") {
			return err
		}
		return exportEntry(tw, path, filepath.ToSlash(filepath.Join(prefix, rel)), d)
	})
}

// exportEntry writes one entry of an image: directories and regular files
// are all a checkpoint holds.
func exportEntry(tw *tar.Writer, path, name string, d fs.DirEntry) error {
	fi, err := d.Info()
	if err != nil {
		return err
	}
	switch {
	case fi.IsDir():
		return tw.WriteHeader(&tar.Header{Name: name + "/", Mode: 0o700, Typeflag: tar.TypeDir})
	case fi.Mode().IsRegular():
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: fi.Size(), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err = io.Copy(tw, io.LimitReader(f, fi.Size()))
		return err
	}
	return fmt.Errorf("%s: an image holds only directories and files, not %v", name, fi.Mode().Type())
}

// ImportSnapshot unpacks an image written by ExportPaused on another node as
// snapshot id of this node, whose template tree is rootfs here; check, called
// once the stream is read, refuses it (nothing is kept) when it returns an
// error, e.g. a stream that is not the one asked for. New sandboxes start
// from it as from any snapshot (Spec.Snapshot).
func (e *Engine) ImportSnapshot(ctx context.Context, id string, r io.Reader, rootfs string, check func() error) error {
	if !idPattern.MatchString(id) {
		return fmt.Errorf("import snapshot %s: %w: snapshot id must be 1-63 lower-case letters and digits", id, ErrInvalid)
	}
	lock := e.snaps.get(id)
	lock.Lock()
	defer lock.Unlock()
	dir := e.snapshotDir(id)
	if _, err := os.Stat(dir); err == nil {
		return fmt.Errorf("import snapshot %s: %w", id, ErrExists)
	}
	tmp := dir + partialSuffix
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("import snapshot %s: %w", id, err)
	}
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return fmt.Errorf("import snapshot %s: %w", id, err)
	}
	keep := false
	defer func() {
		if !keep {
			_ = os.RemoveAll(tmp)
		}
	}()
	root, err := saferoot.Open(tmp, saferoot.InRoot)
	if err != nil {
		return fmt.Errorf("import snapshot %s: %w", id, err)
	}
	defer root.Close()
	if _, err := root.Extract(ctx, r, ".", saferoot.ExtractOptions{Limits: imageLimits, Owner: &saferoot.Owner{}}); err != nil {
		return fmt.Errorf("import snapshot %s: %w", id, err)
	}
	if _, err := io.Copy(io.Discard, r); err != nil { // past the end marker, for check
		return fmt.Errorf("import snapshot %s: %w", id, err)
	}
	if err := check(); err != nil {
		return fmt.Errorf("import snapshot %s: %w", id, err)
	}
	sr, err := readSnapshot(tmp)
	if err != nil {
		return fmt.Errorf("import snapshot %s: %w", id, err)
	}
	// This node's paths: its copy of the template, its daemon.
	sr.ID, sr.RootfsPath, sr.Spec.RootfsPath, sr.EnvdDir = id, rootfs, rootfs, e.envdDir
	raw, err := json.MarshalIndent(sr, "", " ")
	if err != nil {
		return fmt.Errorf("import snapshot %s: %w", id, err)
	}
	if err := os.WriteFile(filepath.Join(tmp, snapshotRecordFile), raw, 0o600); err != nil {
		return fmt.Errorf("import snapshot %s: %w", id, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("import snapshot %s: %w", id, err)
	}
	keep = true
	return nil
}

// ExportSnapshot writes snapshot id, its record and image, to w as a tar
// stream in the layout ImportSnapshot takes, so that sandboxes start from it
// on other nodes. An unknown snapshot is ErrNotFound.
func (e *Engine) ExportSnapshot(ctx context.Context, id string, w io.Writer) error {
	if !idPattern.MatchString(id) {
		return fmt.Errorf("export snapshot %s: %w", id, ErrNotFound)
	}
	lock := e.snaps.get(id)
	lock.RLock()
	defer lock.RUnlock()
	dir := e.snapshotDir(id)
	if _, err := os.Stat(filepath.Join(dir, snapshotRecordFile)); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("export snapshot %s: %w", id, ErrNotFound)
	}
	tw := tar.NewWriter(w)
	if err := exportDir(ctx, tw, dir, ""); err != nil {
		return fmt.Errorf("export snapshot %s: %w", id, err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("export snapshot %s: %w", id, err)
	}
	return nil
}
