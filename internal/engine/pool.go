package engine

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"lelantos.dev/lelantos/internal/runtime"
)

// StateWarm is a pooled sandbox: booted, its daemon up, waiting for a Create that
// matches it. Warm sandboxes are not listed.
const StateWarm State = "warm"

// WarmPool asks the engine to keep at least Size sandboxes of Spec booted ahead of
// demand, and more, up to Options.WarmMax, while its recent creates ask for more
// (see demandWindow). A Create whose spec matches (same template tree, snapshot,
// runtime, sizes and internet access) takes one and only has to initialize its
// daemon. Pooled sandboxes count against the node's capacity: a Create, Resume or
// Fork that does not fit takes the room of pooled ones, and the pools refill once
// there is room.
type WarmPool struct {
	Spec Spec
	Size int
}

// poolKey is what a Create must share with a warm sandbox to take it.
func poolKey(s Spec) string {
	return fmt.Sprintf("%s|%s|%s|%d|%d|%d|%t", s.RootfsPath, s.SnapshotImage, s.RuntimeClass,
		s.CPUCount, s.MemoryMB, s.DiskSizeMB, s.AllowInternet) + volumesKey(s)
}

// warmID returns a fresh runtime id for a pooled sandbox.
func warmID() string {
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return "warm" + string(b)
}

// bootWarm boots one pooled sandbox: network, runtime, healthy daemon, no init. On
// failure everything made for it is removed and only the error is returned.
func (e *Engine) bootWarm(ctx context.Context, spec Spec) (*box, error) {
	spec.ID = warmID()
	spec.AccessToken, spec.EnvVars, spec.StartCmd = "", nil, ""
	if err := validate(spec); err != nil {
		return nil, fmt.Errorf("boot warm sandbox: %w", err)
	}
	rt, err := e.runtimeFor(spec.RuntimeClass)
	if err != nil {
		return nil, fmt.Errorf("boot warm sandbox: %w", err)
	}
	b := e.newBox(spec, e.envdDir)
	b.op.Lock()
	defer b.op.Unlock()
	b.pooled = true
	// A pooled sandbox counts against the node's capacity; it waits for room
	// rather than take it from real sandboxes.
	if err := e.awaitAdmission(ctx, b); err != nil {
		return nil, fmt.Errorf("boot warm sandbox: %w", err)
	}
	if err := e.bootWarmBox(ctx, b, rt); err != nil {
		if derr := e.destroy(context.WithoutCancel(ctx), b, rt); derr != nil {
			e.opts.Logger.Error("warm pool: clean up a failed boot", "sandbox", spec.ID, "err", derr)
		}
		return nil, fmt.Errorf("boot warm sandbox %s: %w", spec.ID, err)
	}
	return b, nil
}

// bootWarmBox does bootWarm's work on b, whose op lock the caller holds.
func (e *Engine) bootWarmBox(ctx context.Context, b *box, rt runtime.Runtime) error {
	rec, err := e.lay(ctx, b)
	if err != nil {
		return err
	}
	restored, err := e.boot(ctx, b, rt, rec.NetNSPath)
	if err != nil {
		return err
	}
	readyCtx, cancel := context.WithTimeout(ctx, e.opts.ReadyTimeout)
	defer cancel()
	if err := e.envd.waitHealthy(readyCtx, rec.Address); err != nil {
		return err
	}
	// A login shell once, as the clients run every command: its files are then in
	// the sandbox's page cache, and the first command of the create that takes
	// the sandbox does not read them from the host. It leaves nothing behind.
	// It runs as root, as the daemon itself does: a daemon that has not yet
	// acted as another user is as a fresh sandbox's (its console, /proc/1/fd,
	// stays open to root inside).
	if err := e.envd.run(readyCtx, rec.Address, "root", warmUpCmd()); err != nil {
		e.opts.Logger.Debug("warm pool: warm-up command", "sandbox", rec.rid(), "err", err)
	}
	rec.State, rec.Restored = StateWarm, restored
	return b.save(rec)
}

// warmUpCmd is what a pooled sandbox runs once before it is pooled: an empty
// command in a login shell, as the e2b clients' commands.run starts every
// command.
func warmUpCmd() []string { return []string{"/bin/bash", "-l", "-c", "true"} }

// takeWarm hands a pooled sandbox matching s to a Create, or nil when none is ready.
func (e *Engine) takeWarm(s Spec) *box {
	key := poolKey(s)
	e.mu.Lock()
	defer e.mu.Unlock()
	pool := e.warm[key]
	if len(pool) == 0 {
		return nil
	}
	b := pool[len(pool)-1]
	e.warm[key] = pool[:len(pool)-1]
	e.settleUntil = time.Now().Add(refillSettle)
	return b
}

// createFromWarm turns a pooled sandbox into sandbox s: it gets s's identity, token,
// environment and defaults from its daemon's init. On failure the pooled sandbox is
// removed and the caller boots one cold.
func (e *Engine) createFromWarm(ctx context.Context, b *box, s Spec) (Status, error) {
	defer e.refill()
	b.op.Lock()
	defer b.op.Unlock()
	rt, err := e.runtimeFor(s.RuntimeClass)
	if err != nil {
		return Status{}, err
	}
	rec := b.record()
	rec.RuntimeID, rec.Spec, rec.State = rec.rid(), s, StateStarting
	e.mu.Lock()
	if e.boxes[s.ID] != nil {
		e.mu.Unlock()
		_ = e.destroy(context.WithoutCancel(ctx), b, rt)
		return Status{}, fmt.Errorf("create sandbox %s: %w", s.ID, ErrExists)
	}
	e.boxes[s.ID] = b
	e.mu.Unlock()
	fail := func(err error) (Status, error) {
		_ = e.destroy(context.WithoutCancel(ctx), b, rt)
		return Status{}, fmt.Errorf("create sandbox %s from the warm pool: %w", s.ID, err)
	}
	if err := b.save(rec); err != nil {
		return fail(err)
	}
	// From here on the sandbox is in use: it gets a full share of the CPU.
	b.pooled = false
	if err := rt.SetCPUWeight(ctx, rec.rid(), cpuWeight(false)); err != nil {
		return fail(err)
	}
	if s.Egress != nil { // before the daemon runs anything of s
		if err := e.opts.Network.SetOptions(ctx, rec.rid(), netOptions(s)); err != nil {
			return fail(err)
		}
	}
	readyCtx, cancel := context.WithTimeout(ctx, e.opts.ReadyTimeout)
	defer cancel()
	if err := e.envd.init(readyCtx, rec.Address, s); err != nil {
		return fail(err)
	}
	if s.StartCmd != "" && !rec.Restored {
		if _, err := e.envd.startCommand(readyCtx, rec.Address, s.AccessToken, s.StartCmd); err != nil {
			return fail(err)
		}
	}
	rec.State = StateRunning
	if err := b.save(rec); err != nil {
		return fail(err)
	}
	b.log.event("sandbox created from template %s (runtime %s, %d CPU, %d MB memory, %d MB disk; from the warm pool)",
		s.TemplateID, s.RuntimeClass, s.CPUCount, s.MemoryMB, s.DiskSizeMB)
	e.watch(b, rt)
	return statusOf(rec), nil
}

// adoptWarm puts a pooled sandbox found at start back in its pool, or removes it.
func (e *Engine) adoptWarm(ctx context.Context, b *box, rt runtime.Runtime, info runtime.Info, inRuntime bool) {
	key := poolKey(b.rec.Spec)
	wanted := false
	for _, p := range e.opts.Warm {
		if p.Spec.RuntimeClass == "" {
			p.Spec.RuntimeClass = e.opts.DefaultClass
		}
		wanted = wanted || poolKey(p.Spec) == key
	}
	if rt != nil && inRuntime && info.Status == runtime.StatusRunning && wanted {
		e.charge(b)
		b.pooled = true
		e.warm[key] = append(e.warm[key], b)
		return
	}
	if err := e.destroy(ctx, b, rt); err != nil && !errors.Is(err, runtime.ErrNotFound) {
		e.opts.Logger.Error("remove a pooled sandbox", "sandbox", b.rec.rid(), "err", err)
	}
}

// DrainPools removes every pooled sandbox, e.g. before uninstalling a node.
func (e *Engine) DrainPools(ctx context.Context) error {
	e.mu.Lock()
	if e.poolCancel != nil {
		e.poolCancel()
	}
	filling := e.filled
	e.mu.Unlock()
	if filling != nil {
		<-filling // a sandbox being booted for a pool is removed by the filler
	}
	e.mu.Lock()
	var all []*box
	for k, pool := range e.warm {
		all = append(all, pool...)
		delete(e.warm, k)
	}
	e.mu.Unlock()
	var errs []error
	for _, b := range all {
		rt, _ := e.runtimeFor(b.rec.Spec.RuntimeClass)
		b.op.Lock()
		errs = append(errs, e.destroy(ctx, b, rt))
		b.op.Unlock()
	}
	return errors.Join(errs...)
}

// Warm reports how many pooled sandboxes are ready, in all pools.
func (e *Engine) Warm() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, pool := range e.warm {
		n += len(pool)
	}
	return n
}
