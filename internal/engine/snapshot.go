package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"lelantos.dev/lelantos/internal/runtime"
)

// SnapshotInfo is a snapshot the node keeps: a checkpoint image of a sandbox, taken
// in place by TakeSnapshot, that new sandboxes start from (Spec.Snapshot). It does not
// depend on the sandbox it was taken of, only on that sandbox's template tree.
type SnapshotInfo struct {
	ID string `json:"id"`
	// SourceID is the sandbox the snapshot was taken of.
	SourceID string `json:"sourceID"`
	// RootfsPath, RuntimeClass and the sizes are the source's; every sandbox started
	// from the snapshot has them.
	RootfsPath   string `json:"rootfsPath"`
	RuntimeClass string `json:"runtimeClass"`
	CPUCount     int    `json:"cpuCount"`
	MemoryMB     int    `json:"memoryMB"`
	DiskSizeMB   int    `json:"diskSizeMB"`
	// SizeBytes is the image's size on disk.
	SizeBytes int64     `json:"sizeBytes"`
	CreatedAt time.Time `json:"createdAt"`
}

// snapshotRecord is what a snapshot's directory keeps beside its image: the source's
// whole spec (its daemon in the image holds the source's access token, which a new
// sandbox presents to give it its own) and the daemon's directory.
type snapshotRecord struct {
	SnapshotInfo
	Spec    Spec   `json:"spec"`
	EnvdDir string `json:"envdDir"`
}

// Names inside the data directory and a snapshot's directory.
const (
	snapshotsDir       = "snapshots"
	forkImagesDir      = "forks"
	snapshotRecordFile = "snapshot.json"
	snapshotImageDir   = "image"
	// partialSuffix marks a snapshot directory being written; New removes them.
	partialSuffix = ".partial"
)

// snapshotLocks serializes the removal of a snapshot with the sandboxes starting from
// it: starts share a snapshot, a delete has it alone.
type snapshotLocks struct {
	mu    sync.Mutex
	locks map[string]*sync.RWMutex
}

func (l *snapshotLocks) get(id string) *sync.RWMutex {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.locks == nil {
		l.locks = map[string]*sync.RWMutex{}
	}
	m := l.locks[id]
	if m == nil {
		m = &sync.RWMutex{}
		l.locks[id] = m
	}
	return m
}

func (e *Engine) snapshotDir(id string) string {
	return filepath.Join(e.opts.DataDir, snapshotsDir, id)
}

// TakeSnapshot checkpoints running sandbox id in place into a new snapshot named
// snapshotID (lower-case letters and digits): the sandbox pauses briefly and runs on
// with its id, address, resources and daemon settings; only connections into it are
// cut. The snapshot is kept until DeleteSnapshot. A runtime that cannot checkpoint
// gives an error wrapping *runtime.UnsupportedError; a snapshot of that name,
// ErrExists.
func (e *Engine) TakeSnapshot(ctx context.Context, id, snapshotID string) (SnapshotInfo, error) {
	if !idPattern.MatchString(snapshotID) {
		return SnapshotInfo{}, fmt.Errorf("snapshot sandbox %s: %w: snapshot id %q must be 1-63 lower-case letters and digits",
			id, ErrInvalid, snapshotID)
	}
	b, err := e.lookup(id)
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("snapshot sandbox %s: %w", id, err)
	}
	defer b.op.Unlock()
	ctx = context.WithoutCancel(ctx)
	rec := b.record()
	rt, err := e.runtimeFor(rec.Spec.RuntimeClass)
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("snapshot sandbox %s: %w", id, err)
	}
	if !rt.Capabilities().Checkpoint {
		return SnapshotInfo{}, fmt.Errorf("snapshot sandbox %s: %w", id,
			&runtime.UnsupportedError{Class: rt.Class(), Operation: "snapshots (it cannot checkpoint a sandbox)"})
	}
	if rec.State != StateRunning {
		return SnapshotInfo{}, fmt.Errorf("snapshot sandbox %s: it is %s: %w", id, rec.State, ErrState)
	}
	lock := e.snaps.get(snapshotID)
	lock.Lock()
	defer lock.Unlock()
	dir := e.snapshotDir(snapshotID)
	if _, err := os.Stat(dir); err == nil {
		return SnapshotInfo{}, fmt.Errorf("snapshot sandbox %s: snapshot %s: %w", id, snapshotID, ErrExists)
	}
	tmp := dir + partialSuffix
	if err := os.RemoveAll(tmp); err != nil {
		return SnapshotInfo{}, fmt.Errorf("snapshot sandbox %s: %w", id, err)
	}
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return SnapshotInfo{}, fmt.Errorf("snapshot sandbox %s: %w", id, err)
	}
	info, err := e.saveSnapshot(ctx, b, rt, rec, snapshotID, tmp)
	if err != nil {
		_ = os.RemoveAll(tmp)
		return SnapshotInfo{}, fmt.Errorf("snapshot sandbox %s: %w", id, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		_ = os.RemoveAll(tmp)
		return SnapshotInfo{}, fmt.Errorf("snapshot sandbox %s: %w", id, err)
	}
	b.log.event("snapshot %s taken (%d MB)", snapshotID, info.SizeBytes>>20)
	return info, nil
}

// saveSnapshot checkpoints b in place into dir and writes the snapshot's record.
func (e *Engine) saveSnapshot(ctx context.Context, b *box, rt runtime.Runtime, rec *record, snapshotID, dir string) (SnapshotInfo, error) {
	image := filepath.Join(dir, snapshotImageDir)
	if err := e.checkpointInPlace(ctx, b, rt, image); err != nil {
		return SnapshotInfo{}, err
	}
	s := rec.Spec
	sr := snapshotRecord{
		SnapshotInfo: SnapshotInfo{
			ID: snapshotID, SourceID: s.ID, RootfsPath: s.RootfsPath, RuntimeClass: s.RuntimeClass,
			CPUCount: s.CPUCount, MemoryMB: s.MemoryMB, DiskSizeMB: s.DiskSizeMB,
			SizeBytes: dirSize(image), CreatedAt: time.Now().UTC(),
		},
		Spec: s, EnvdDir: rec.EnvdDir,
	}
	raw, err := json.MarshalIndent(sr, "", " ")
	if err != nil {
		return SnapshotInfo{}, err
	}
	if err := os.WriteFile(filepath.Join(dir, snapshotRecordFile), raw, 0o600); err != nil {
		return SnapshotInfo{}, err
	}
	return sr.SnapshotInfo, nil
}

// DeleteSnapshot removes snapshot id from the node; ErrNotFound when there is none.
// Sandboxes started from it are not affected. It waits for starts from it to finish.
func (e *Engine) DeleteSnapshot(ctx context.Context, id string) error {
	if !idPattern.MatchString(id) {
		return fmt.Errorf("delete snapshot %s: %w", id, ErrNotFound)
	}
	lock := e.snaps.get(id)
	lock.Lock()
	defer lock.Unlock()
	dir := e.snapshotDir(id)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete snapshot %s: %w", id, ErrNotFound)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("delete snapshot %s: %w", id, err)
	}
	return nil
}

// Snapshots lists the snapshots on the node, oldest first. Unreadable ones are left
// out.
func (e *Engine) Snapshots() ([]SnapshotInfo, error) {
	ents, err := os.ReadDir(filepath.Join(e.opts.DataDir, snapshotsDir))
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	out := []SnapshotInfo{}
	for _, ent := range ents {
		if !idPattern.MatchString(ent.Name()) {
			continue
		}
		if sr, err := readSnapshot(e.snapshotDir(ent.Name())); err == nil {
			out = append(out, sr.SnapshotInfo)
		}
	}
	slices.SortFunc(out, func(a, b SnapshotInfo) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

func readSnapshot(dir string) (*snapshotRecord, error) {
	raw, err := os.ReadFile(filepath.Join(dir, snapshotRecordFile))
	if err != nil {
		return nil, err
	}
	var sr snapshotRecord
	if err := json.Unmarshal(raw, &sr); err != nil {
		return nil, fmt.Errorf("snapshot record in %s: %w", dir, err)
	}
	return &sr, nil
}

// createFromSnapshot starts sandbox s from the snapshot s.Snapshot names.
func (e *Engine) createFromSnapshot(ctx context.Context, s Spec) (Status, error) {
	id := s.Snapshot
	if !idPattern.MatchString(id) {
		return Status{}, fmt.Errorf("create sandbox %s: %w: snapshot %q not found", s.ID, ErrInvalid, id)
	}
	lock := e.snaps.get(id)
	lock.RLock()
	defer lock.RUnlock()
	dir := e.snapshotDir(id)
	sr, err := readSnapshot(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return Status{}, fmt.Errorf("create sandbox %s: %w: snapshot %q not found", s.ID, ErrInvalid, id)
	}
	if err != nil {
		return Status{}, fmt.Errorf("create sandbox %s: %w", s.ID, err)
	}
	full, err := forkSpec(sr.Spec, s)
	if err != nil {
		return Status{}, fmt.Errorf("create sandbox %s from snapshot %s: %w", s.ID, id, err)
	}
	// Unlike a fork's, a new sandbox's network settings are its own (the host
	// enforces them; the image holds none).
	full.AllowInternet, full.Egress, full.Snapshot = s.AllowInternet, s.Egress, id
	rt, err := e.runtimeFor(full.RuntimeClass)
	if err != nil {
		return Status{}, fmt.Errorf("create sandbox %s: %w", s.ID, err)
	}
	from := imageSource{Spec: sr.Spec, EnvdDir: sr.EnvdDir, Image: filepath.Join(dir, snapshotImageDir)}
	b, err := e.reserve(ctx, full, from.EnvdDir, rt)
	if err != nil {
		return Status{}, fmt.Errorf("create sandbox %s: %w", s.ID, err)
	}
	st, err := e.startFromImage(ctx, from, rt, b, "sandbox started from snapshot "+id)
	if err != nil {
		return Status{}, fmt.Errorf("create sandbox %s: %w", s.ID, err)
	}
	return st, nil
}
