package engine

import (
	"context"
	"errors"
	"fmt"
)

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
