package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"lelantos.dev/lelantos/internal/network"
)

// Pause stops a running sandbox keeping its state. A runtime that checkpoints saves
// memory, processes and the writable layer to disk and frees everything else; one
// that cannot freezes the sandbox in place with its memory resident.
func (e *Engine) Pause(ctx context.Context, id string) (Status, error) {
	b, err := e.lookup(id)
	if err != nil {
		return Status{}, fmt.Errorf("pause sandbox %s: %w", id, err)
	}
	defer b.op.Unlock()
	ctx = context.WithoutCancel(ctx) // half a checkpoint helps nobody
	rec := b.record()
	rid := rec.rid()
	if rec.State != StateRunning {
		return statusOf(rec), fmt.Errorf("pause sandbox %s: it is %s: %w", id, rec.State, ErrState)
	}
	rt, err := e.runtimeFor(rec.Spec.RuntimeClass)
	if err != nil {
		return Status{}, fmt.Errorf("pause sandbox %s: %w", id, err)
	}
	if !rt.Capabilities().Checkpoint {
		if err := rt.Freeze(ctx, rid); err != nil {
			return Status{}, fmt.Errorf("pause sandbox %s: %w", id, err)
		}
		rec.State, rec.Frozen = StatePaused, true
		if err := b.save(rec); err != nil {
			return Status{}, fmt.Errorf("pause sandbox %s: %w", id, err)
		}
		b.log.event("sandbox paused (frozen in memory: runtime %s cannot checkpoint)", rt.Class())
		return statusOf(rec), nil
	}
	rec.State = StatePausing
	if err := b.save(rec); err != nil {
		return Status{}, fmt.Errorf("pause sandbox %s: %w", id, err)
	}
	b.unwatch()
	// Connections into the sandbox do not survive a checkpoint.
	defer e.envd.http.CloseIdleConnections()
	image := filepath.Join(b.dir, "images", strconv.Itoa(rec.Pauses+1))
	if err := rt.Checkpoint(ctx, rid, image); err != nil {
		_ = os.RemoveAll(image)
		// The checkpoint failed before stopping the sandbox, or it stopped it half-way.
		if _, serr := rt.Stats(ctx, rid); serr == nil {
			rec.State = StateRunning
			_ = b.save(rec)
			e.watch(b, rt)
			return Status{}, fmt.Errorf("pause sandbox %s: %w", id, err)
		}
		e.markDead(ctx, b, rt, "pause failed: "+err.Error())
		return Status{}, fmt.Errorf("pause sandbox %s: %w", id, err)
	}
	old := rec.Image
	rec.State, rec.Image, rec.Pauses = StatePaused, image, rec.Pauses+1
	// The checkpointed sandbox holds no memory or CPU until it is resumed.
	e.discharge(b)
	if err := b.save(rec); err != nil {
		return Status{}, fmt.Errorf("pause sandbox %s: %w", id, err)
	}
	if old != "" {
		_ = os.RemoveAll(old)
	}
	b.log.flush()
	b.log.event("sandbox paused (memory and files saved)")
	return statusOf(rec), nil
}

// Resume brings a paused sandbox back with its memory and files.
func (e *Engine) Resume(ctx context.Context, id string) (st Status, err error) {
	b, err := e.lookup(id)
	if err != nil {
		return Status{}, fmt.Errorf("resume sandbox %s: %w", id, err)
	}
	defer b.op.Unlock()
	ctx = context.WithoutCancel(ctx)
	rec := b.record()
	rid := rec.rid()
	if rec.State != StatePaused {
		return statusOf(rec), fmt.Errorf("resume sandbox %s: it is %s: %w", id, rec.State, ErrState)
	}
	rt, err := e.runtimeFor(rec.Spec.RuntimeClass)
	if err != nil {
		return Status{}, fmt.Errorf("resume sandbox %s: %w", id, err)
	}
	if rec.Frozen {
		if err := rt.Thaw(ctx, rid); err != nil {
			return Status{}, fmt.Errorf("resume sandbox %s: %w", id, err)
		}
		rec.State, rec.Frozen = StateRunning, false
		if err := b.save(rec); err != nil {
			return Status{}, fmt.Errorf("resume sandbox %s: %w", id, err)
		}
		b.log.event("sandbox resumed")
		return statusOf(rec), nil
	}
	if err := e.admit(ctx, b); err != nil {
		return Status{}, fmt.Errorf("resume sandbox %s: %w", id, err)
	}
	defer func() {
		if err != nil { // still paused
			e.discharge(b)
		}
	}()
	// The namespace survives a pause, but not a host reboot: Setup rebuilds it on
	// the same address if needed, then the address goes back on for gVisor.
	ep, err := e.opts.Network.Setup(ctx, rid, network.Options{AllowInternet: rec.Spec.AllowInternet})
	if err != nil {
		return Status{}, fmt.Errorf("resume sandbox %s: %w", id, networkError(err))
	}
	if err := e.opts.Network.Reapply(ctx, rid); err != nil {
		return Status{}, fmt.Errorf("resume sandbox %s: %w", id, err)
	}
	rec.Address, rec.NetNSPath = addrOf(ep.Address), ep.NetNSPath
	if err := rt.Restore(ctx, rid, e.config(b, ep.NetNSPath), rec.Image); err != nil {
		return Status{}, fmt.Errorf("resume sandbox %s: %w", id, err)
	}
	readyCtx, cancel := context.WithTimeout(ctx, e.opts.ReadyTimeout)
	defer cancel()
	if err := e.envd.waitHealthy(readyCtx, rec.Address); err != nil {
		_ = rt.Kill(ctx, rid)
		return Status{}, fmt.Errorf("resume sandbox %s: %w", id, err)
	}
	rec.State = StateRunning
	if err := b.save(rec); err != nil {
		return Status{}, fmt.Errorf("resume sandbox %s: %w", id, err)
	}
	// The image stays until the next pause replaces it: a crash right now must not
	// leave a paused record without its image.
	b.log.event("sandbox resumed")
	e.watch(b, rt)
	return statusOf(rec), nil
}

// Metric is one sample of a sandbox's resource use.
type Metric struct {
	CPUCount   int
	CPUUsedPct float64
	MemUsed    int64
	MemTotal   int64
	MemCache   int64
	DiskUsed   int64
	DiskTotal  int64
}

// Metrics samples a running sandbox: CPU from its host cgroup, memory and disk as the
// sandbox itself sees them (from its daemon), falling back to the cgroup.
func (e *Engine) Metrics(ctx context.Context, id string) (Metric, error) {
	b, err := e.lookup(id)
	if err != nil {
		return Metric{}, fmt.Errorf("metrics of sandbox %s: %w", id, err)
	}
	rec := b.record()
	rt, rerr := e.runtimeFor(rec.Spec.RuntimeClass)
	if rec.State != StateRunning || rerr != nil {
		b.op.Unlock()
		return Metric{}, fmt.Errorf("metrics of sandbox %s: it is %s: %w", id, rec.State, ErrState)
	}
	st, err := rt.Stats(ctx, rec.rid())
	m := Metric{CPUCount: rec.Spec.CPUCount, MemTotal: int64(rec.Spec.MemoryMB) << 20, DiskTotal: int64(rec.Spec.DiskSizeMB) << 20}
	if err == nil {
		if prev := b.cpu; !prev.Time.IsZero() && st.Time.After(prev.Time) && st.CPUNanos >= prev.CPUNanos {
			wall := float64(st.Time.Sub(prev.Time).Nanoseconds()) * float64(rec.Spec.CPUCount)
			m.CPUUsedPct = min(100, 100*float64(st.CPUNanos-prev.CPUNanos)/wall)
		}
		b.cpu = st
		m.MemUsed, m.MemCache = int64(st.MemoryBytes), int64(st.MemoryCacheBytes)
	}
	b.op.Unlock()
	if em, derr := e.envd.metrics(ctx, rec.Address, rec.Spec.AccessToken); derr == nil {
		m.MemUsed, m.MemCache = em.MemUsed, em.MemCache
		m.DiskUsed = em.DiskUsed
		if em.DiskTotal > 0 {
			m.DiskTotal = em.DiskTotal
		}
		if err != nil {
			m.CPUUsedPct = em.CPUUsedPct
		}
	} else if err != nil {
		return Metric{}, fmt.Errorf("metrics of sandbox %s: %w", id, errors.Join(err, derr))
	}
	return m, nil
}
