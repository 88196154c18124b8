package engine

import (
	"context"
	"errors"
	"fmt"
	goruntime "runtime"
	"time"

	"golang.org/x/sys/unix"

	"lelantos.dev/lelantos/internal/network"
)

// ErrNodeFull: the node has no room for the sandbox (memory, CPU or addresses); the
// message says which. Retry later or elsewhere.
var ErrNodeFull = errors.New("node full")

// Defaults of the capacity options.
const (
	// DefaultMemoryReserveMB is the host memory kept out of the node's capacity for
	// the host itself, the server and each sandbox's runtime overhead.
	DefaultMemoryReserveMB = 1024
	// DefaultMemoryOvercommit lets sandboxes ask for as much memory as the node has:
	// a sandbox's memory is a hard limit, and more would let them OOM the host.
	DefaultMemoryOvercommit = 1.0
	// DefaultCPUOvercommit lets sandboxes ask for sixteen times the node's CPUs: CPU
	// is shared by time (a busy sandbox slows its neighbours, it cannot take their
	// memory), and most sandboxes idle most of the time; on two cores that is
	// sixteen sandboxes of two CPUs.
	DefaultCPUOvercommit = 16.0
)

// Usage is an amount of the node's resources: what a sandbox asks for, what all of
// them commit, or what the node allows.
type Usage struct {
	CPUs     int
	MemoryMB int
}

func (u Usage) add(v Usage) Usage { return Usage{u.CPUs + v.CPUs, u.MemoryMB + v.MemoryMB} }
func (u Usage) sub(v Usage) Usage { return Usage{u.CPUs - v.CPUs, u.MemoryMB - v.MemoryMB} }

// Within reports whether u fits in limit.
func (u Usage) Within(limit Usage) bool { return u.CPUs <= limit.CPUs && u.MemoryMB <= limit.MemoryMB }

// usageOf is what a sandbox of spec s commits while it holds memory and CPU.
func usageOf(s Spec) Usage { return Usage{CPUs: s.CPUCount, MemoryMB: s.MemoryMB} }

// Capacity reports the node's admission state.
type Capacity struct {
	// Limit is what sandboxes may commit in all: the node's CPUs and memory times
	// the overcommit ratios.
	Limit Usage
	// Committed is what the sandboxes holding resources ask for in all: running,
	// starting, frozen and pooled ones (a checkpointed pause holds none).
	Committed Usage
}

// Capacity reports what the node allows and what its sandboxes commit.
func (e *Engine) Capacity() Capacity {
	e.mu.Lock()
	defer e.mu.Unlock()
	return Capacity{Limit: e.limit, Committed: e.used}
}

// capacityLimit applies the capacity options' defaults and returns the node's limit.
func capacityLimit(o *Options) (Usage, error) {
	switch {
	case o.NodeCPUs < 0:
		return Usage{}, fmt.Errorf("NodeCPUs %d must not be negative", o.NodeCPUs)
	case o.NodeMemoryMB < 0:
		return Usage{}, fmt.Errorf("NodeMemoryMB %d must not be negative", o.NodeMemoryMB)
	case o.MemoryReserveMB < 0:
		return Usage{}, fmt.Errorf("MemoryReserveMB %d must not be negative", o.MemoryReserveMB)
	case o.CPUOvercommit < 0:
		return Usage{}, fmt.Errorf("CPUOvercommit %g must not be negative", o.CPUOvercommit)
	case o.MemoryOvercommit < 0:
		return Usage{}, fmt.Errorf("MemoryOvercommit %g must not be negative", o.MemoryOvercommit)
	}
	if o.NodeCPUs == 0 {
		o.NodeCPUs = goruntime.NumCPU()
	}
	if o.MemoryReserveMB == 0 {
		o.MemoryReserveMB = DefaultMemoryReserveMB
	}
	if o.NodeMemoryMB == 0 {
		var si unix.Sysinfo_t
		if err := unix.Sysinfo(&si); err != nil {
			return Usage{}, fmt.Errorf("read the host's memory: %w", err)
		}
		total := int(uint64(si.Totalram) * uint64(si.Unit) >> 20)
		if total <= o.MemoryReserveMB {
			return Usage{}, fmt.Errorf("the host's %d MB of memory leave nothing after MemoryReserveMB %d", total, o.MemoryReserveMB)
		}
		o.NodeMemoryMB = total - o.MemoryReserveMB
	}
	if o.CPUOvercommit == 0 {
		o.CPUOvercommit = DefaultCPUOvercommit
	}
	if o.MemoryOvercommit == 0 {
		o.MemoryOvercommit = DefaultMemoryOvercommit
	}
	return Usage{
		CPUs:     int(float64(o.NodeCPUs) * o.CPUOvercommit),
		MemoryMB: int(float64(o.NodeMemoryMB) * o.MemoryOvercommit),
	}, nil
}

// fullError says why ask does not fit beside used within limit.
func fullError(used, ask, limit Usage) error {
	if used.MemoryMB+ask.MemoryMB > limit.MemoryMB {
		return fmt.Errorf("%w: %s of %s memory committed, sandbox asks %s",
			ErrNodeFull, sizeMB(used.MemoryMB), sizeMB(limit.MemoryMB), sizeMB(ask.MemoryMB))
	}
	return fmt.Errorf("%w: %d of %d CPUs committed, sandbox asks %d", ErrNodeFull, used.CPUs, limit.CPUs, ask.CPUs)
}

// sizeMB formats a size in MB the way people read it: "512 MiB", "1 GiB", "7.5 GiB".
func sizeMB(mb int) string {
	if mb < 1024 {
		return fmt.Sprintf("%d MiB", mb)
	}
	if mb%1024 == 0 {
		return fmt.Sprintf("%d GiB", mb/1024)
	}
	return fmt.Sprintf("%.1f GiB", float64(mb)/1024)
}

// admit charges b with its spec's resources if they fit in the node's capacity.
// When they do not, pooled sandboxes are removed to make room if that is enough,
// after waiting (up to ReadyTimeout) for those still booting to be ready when it
// takes them too; otherwise it fails with ErrNodeFull and changes nothing. The
// check and the charge are one step, so concurrent admissions never overcommit.
// Call with b.op held.
func (e *Engine) admit(ctx context.Context, b *box) error {
	ask := usageOf(b.record().Spec)
	deadline := time.Now().Add(e.opts.ReadyTimeout)
	e.mu.Lock()
	if b.charge != (Usage{}) {
		e.mu.Unlock()
		return nil // admitted already
	}
	for !e.used.add(ask).Within(e.limit) {
		pooled := e.pooledLocked()
		if e.used.sub(pooled).add(ask).Within(e.limit) {
			break // the pooled sandboxes make room
		}
		wait := time.Until(deadline)
		if e.booting == (Usage{}) || !e.used.sub(pooled).sub(e.booting).add(ask).Within(e.limit) || wait <= 0 {
			err := fullError(e.used, ask, e.limit)
			e.mu.Unlock()
			return err
		}
		changed := e.changed
		e.mu.Unlock()
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for a pooled sandbox to make room: %w", ctx.Err())
		case <-changed:
		case <-time.After(wait):
		}
		e.mu.Lock()
	}
	var evicted []*box
	for !e.used.add(ask).Within(e.limit) {
		w := e.popWarmLocked()
		e.dischargeLocked(w)
		evicted = append(evicted, w)
	}
	b.charge = ask
	e.used = e.used.add(ask)
	e.mu.Unlock()
	for _, w := range evicted {
		e.opts.Logger.Info("removing a pooled sandbox to make room", "sandbox", w.record().rid(), "for", b.record().Spec.ID)
		rt, _ := e.runtimeFor(w.record().Spec.RuntimeClass)
		w.op.Lock()
		if err := e.destroy(context.WithoutCancel(ctx), w, rt); err != nil {
			e.opts.Logger.Error("remove a pooled sandbox", "sandbox", w.record().rid(), "err", err)
		}
		w.op.Unlock()
	}
	if len(evicted) > 0 {
		e.refill()
	}
	return nil
}

// pooledLocked is what the ready pooled sandboxes hold. Call with e.mu held.
func (e *Engine) pooledLocked() Usage {
	var u Usage
	for _, pool := range e.warm {
		for _, w := range pool {
			u = u.add(w.charge)
		}
	}
	return u
}

// addWarmLocked puts a booted sandbox in its pool, where a create may take it or
// its room. Call with e.mu held.
func (e *Engine) addWarmLocked(key string, b *box) {
	e.warm[key] = append(e.warm[key], b)
	if b.booting {
		e.booting, b.booting = e.booting.sub(b.charge), false
	}
	e.signalLocked()
}

// signalLocked wakes whoever waits for room. Call with e.mu held.
func (e *Engine) signalLocked() {
	close(e.changed)
	e.changed = make(chan struct{})
}

// popWarmLocked takes one sandbox out of the pools, from the fullest pool. Call
// with e.mu held and at least one pooled sandbox.
func (e *Engine) popWarmLocked() *box {
	key := ""
	for k, pool := range e.warm {
		if len(pool) > len(e.warm[key]) || (len(pool) == len(e.warm[key]) && k < key) {
			key = k
		}
	}
	pool := e.warm[key]
	w := pool[len(pool)-1]
	e.warm[key] = pool[:len(pool)-1]
	return w
}

// awaitAdmission admits b, waiting while the node is full rather than removing
// pooled sandboxes: warm-pool boots use it. b counts as booting until
// addWarmLocked pools it. It fails only when ctx ends.
func (e *Engine) awaitAdmission(ctx context.Context, b *box) error {
	ask := usageOf(b.record().Spec)
	for {
		e.mu.Lock()
		if e.used.add(ask).Within(e.limit) {
			b.charge, b.booting = ask, true
			e.used, e.booting = e.used.add(ask), e.booting.add(ask)
			e.mu.Unlock()
			return nil
		}
		changed := e.changed
		e.mu.Unlock()
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for room on the node: %w", ctx.Err())
		case <-changed:
		}
	}
}

// charge records, without checking, that b holds its spec's resources: for
// sandboxes found running when the node starts.
func (e *Engine) charge(b *box) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if b.charge == (Usage{}) {
		b.charge = usageOf(b.rec.Spec)
		e.used = e.used.add(b.charge)
	}
}

// discharge records that b no longer holds memory or CPU (it was removed, ended or
// checkpointed) and wakes warm-pool boots waiting for room.
func (e *Engine) discharge(b *box) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.dischargeLocked(b)
}

func (e *Engine) dischargeLocked(b *box) {
	if b.charge == (Usage{}) {
		return
	}
	if b.booting {
		e.booting, b.booting = e.booting.sub(b.charge), false
	}
	e.used = e.used.sub(b.charge)
	b.charge = Usage{}
	e.signalLocked()
}

// holdsResources reports whether a sandbox in record r holds memory and CPU.
func holdsResources(r *record) bool {
	switch r.State {
	case StateDead:
		return false
	case StatePaused:
		return r.Frozen
	}
	return true
}

// networkError turns the network's "no free address" into ErrNodeFull.
func networkError(err error) error {
	if errors.Is(err, network.ErrExhausted) {
		return fmt.Errorf("%w: no free sandbox addresses (%w)", ErrNodeFull, err)
	}
	return err
}
