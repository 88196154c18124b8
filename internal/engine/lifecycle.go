package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"lelantos.dev/lelantos/internal/runtime"
)

// Create builds and starts a sandbox, waits for its daemon and initializes it; with
// s.Snapshot, it restores the sandbox from that snapshot instead. On any failure
// everything made for it is removed again.
func (e *Engine) Create(ctx context.Context, s Spec) (st Status, err error) {
	if s.Snapshot != "" {
		return e.createFromSnapshot(ctx, s)
	}
	if s.RuntimeClass == "" {
		s.RuntimeClass = e.opts.DefaultClass
	}
	if err := validate(s); err != nil {
		return Status{}, fmt.Errorf("create sandbox %s: %w", s.ID, err)
	}
	rt, err := e.runtimeFor(s.RuntimeClass)
	if err != nil {
		return Status{}, fmt.Errorf("create sandbox %s: %w", s.ID, err)
	}
	if poolable(s) {
		e.mu.Lock()
		e.noteCreateLocked(s, time.Now())
		e.mu.Unlock()
		defer e.refill() // the pool grows with its demand, and refills
	}
	if b := e.takeWarm(s); b != nil {
		st, err := e.createFromWarm(ctx, b, s)
		if err == nil || errors.Is(err, ErrExists) {
			return st, err
		}
		e.opts.Logger.Warn("warm sandbox unusable; booting one", "sandbox", s.ID, "err", err)
	}
	b := e.newBox(s, e.envdDir)
	b.op.Lock()
	defer b.op.Unlock()
	if err := e.register(b); err != nil {
		return Status{}, fmt.Errorf("create sandbox %s: %w", s.ID, err)
	}
	if err := e.admit(ctx, b); err != nil {
		e.unregister(b)
		return Status{}, fmt.Errorf("create sandbox %s: %w", s.ID, err)
	}
	defer func() {
		if err != nil {
			e.destroy(context.WithoutCancel(ctx), b, rt)
		}
	}()
	rec, err := e.lay(ctx, b)
	if err != nil {
		return Status{}, fmt.Errorf("create sandbox %s: %w", s.ID, err)
	}
	restored, err := e.boot(ctx, b, rt, rec.NetNSPath)
	if err != nil {
		return Status{}, fmt.Errorf("create sandbox %s: %w", s.ID, err)
	}
	readyCtx, cancel := context.WithTimeout(ctx, e.opts.ReadyTimeout)
	defer cancel()
	if err := e.envd.waitHealthy(readyCtx, rec.Address); err != nil {
		return Status{}, fmt.Errorf("create sandbox %s: %w; console: %s", s.ID, err, runtime.Tail(filepath.Join(b.dir, consoleFile), 512))
	}
	if err := e.envd.init(readyCtx, rec.Address, s); err != nil {
		return Status{}, fmt.Errorf("create sandbox %s: %w", s.ID, err)
	}
	if s.StartCmd != "" && !restored {
		// From a snapshot the start command is already running.
		if _, err := e.envd.startCommand(readyCtx, rec.Address, s.AccessToken, s.StartCmd); err != nil {
			return Status{}, fmt.Errorf("create sandbox %s: %w", s.ID, err)
		}
	}
	rec.State, rec.Restored = StateRunning, restored
	if err := b.save(rec); err != nil {
		return Status{}, fmt.Errorf("create sandbox %s: %w", s.ID, err)
	}
	b.log.event("sandbox created from template %s (runtime %s, %d CPU, %d MB memory, %d MB disk)",
		s.TemplateID, s.RuntimeClass, s.CPUCount, s.MemoryMB, s.DiskSizeMB)
	e.watch(b, rt)
	return statusOf(rec), nil
}

// newBox is the handle of a sandbox about to be built, running the daemon in envdDir.
func (e *Engine) newBox(s Spec, envdDir string) *box {
	dir := filepath.Join(e.opts.DataDir, "sandboxes", s.ID)
	return &box{dir: dir, log: newSandboxLog(dir, e.opts.LogCap), rec: &record{
		Spec: s, State: StateStarting, EnvdDir: envdDir, CreatedAt: time.Now().UTC(),
	}}
}

// register makes b the sandbox of its id, unless the id is taken.
func (e *Engine) register(b *box) error {
	id := b.rec.Spec.ID
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.boxes[id] != nil {
		return ErrExists
	}
	e.boxes[id] = b
	return nil
}

// unregister undoes register for a sandbox nothing was built for yet.
func (e *Engine) unregister(b *box) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if id := b.rec.Spec.ID; e.boxes[id] == b {
		delete(e.boxes, id)
	}
}

// lay makes a new sandbox's directory, record and network, and records its
// address. Call with b.op held; on error the caller destroys b.
func (e *Engine) lay(ctx context.Context, b *box) (*record, error) {
	if err := os.Mkdir(b.dir, 0o700); err != nil {
		return nil, err
	}
	rec := b.record()
	if err := b.save(rec); err != nil {
		return nil, err
	}
	if err := e.attachVolumes(ctx, rec.Spec); err != nil {
		return nil, err
	}
	ep, err := e.setupNetwork(ctx, rec)
	if err != nil {
		return nil, networkError(err)
	}
	rec.Address, rec.NetNSPath = addrOf(ep.Address), ep.NetNSPath
	if err := b.save(rec); err != nil {
		return nil, err
	}
	return rec, nil
}

// boot starts a new sandbox: restored from its template's snapshot when there is a
// usable one, else started cold.
// It reports whether the sandbox came from the snapshot.
func (e *Engine) boot(ctx context.Context, b *box, rt runtime.Runtime, netns string) (restored bool, err error) {
	rec := b.record()
	if img := rec.Spec.SnapshotImage; img != "" && rt.Capabilities().Checkpoint {
		// A snapshot holds open files of the daemon it was taken with; a node with
		// another daemon starts cold so the sandbox runs the current one.
		if dir, err := os.ReadFile(filepath.Join(img, snapshotEnvdFile)); err == nil && string(dir) == e.envdDir {
			return true, e.runtimeRestore(ctx, rt, rec.rid(), e.config(b, netns), img)
		}
		b.log.event("template snapshot was made with another daemon: starting cold")
	}
	return false, e.runtimeStart(ctx, rt, rec.rid(), e.config(b, netns))
}

// snapshotEnvdFile, in a snapshot's directory, names the daemon directory it used.
const snapshotEnvdFile = "lelantos-envd-dir"

// Snapshot checkpoints a running sandbox into dir as a template snapshot, then removes
// the sandbox. New sandboxes whose Spec.SnapshotImage is dir start from that moment.
func (e *Engine) Snapshot(ctx context.Context, id, dir string) error {
	b, err := e.lookup(id)
	if err != nil {
		return fmt.Errorf("snapshot sandbox %s: %w", id, err)
	}
	defer b.op.Unlock()
	ctx = context.WithoutCancel(ctx)
	rec := b.record()
	rt, err := e.runtimeFor(rec.Spec.RuntimeClass)
	if err != nil {
		return fmt.Errorf("snapshot sandbox %s: %w", id, err)
	}
	if rec.State != StateRunning {
		return fmt.Errorf("snapshot sandbox %s: it is %s: %w", id, rec.State, ErrState)
	}
	b.unwatch()
	err = rt.Checkpoint(ctx, rec.rid(), dir)
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, snapshotEnvdFile), []byte(rec.EnvdDir), 0o600)
	}
	if derr := e.destroy(ctx, b, rt); derr != nil {
		e.opts.Logger.Error("remove snapshotted sandbox", "sandbox", id, "err", derr)
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		return fmt.Errorf("snapshot sandbox %s: %w", id, err)
	}
	return nil
}

// watch starts the goroutines that follow a running sandbox: one moves its console
// output into the log, one notices when it ends by itself.
func (e *Engine) watch(b *box, rt runtime.Runtime) {
	ctx, cancel := context.WithCancel(context.Background())
	pumped := make(chan struct{})
	// Stopping waits for the pump's last drain, so that whoever stopped it can flush
	// the rest without reading the same output twice.
	b.stop = func() { cancel(); <-pumped }
	id := b.record().rid()
	sub, err := e.consoles.subscribe(filepath.Join(b.dir, consoleFile))
	if err != nil {
		e.opts.Logger.Debug("console not watched; polling it", "sandbox", id, "err", err)
	}
	go func() {
		defer close(pumped)
		if sub != nil {
			defer sub.close()
		}
		b.log.pump(ctx, e.opts.LogInterval, sub)
	}()
	go e.watchMemory(ctx, b, rt, id)
	go func() {
		exit, err := rt.Wait(ctx, id)
		if err != nil || ctx.Err() != nil {
			return // stopped on purpose, or the runtime lost it: Kill cleans up
		}
		b.op.Lock()
		defer b.op.Unlock()
		if ctx.Err() != nil { // an operation stopped the watch while we waited
			return
		}
		e.markDead(context.Background(), b, rt, exit.Reason)
	}()
}

// watchMemory logs every out-of-memory kill inside a running sandbox. gVisor's host
// OOM killer may end one process of the sandbox and leave the rest running; users
// must still learn why that process died.
func (e *Engine) watchMemory(ctx context.Context, b *box, rt runtime.Runtime, id string) {
	var seen uint64
	if st, err := rt.Stats(ctx, id); err == nil {
		seen = st.OOMKills
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, err := rt.Stats(ctx, id)
		if err != nil || st.OOMKills <= seen {
			continue
		}
		b.log.eventAt(LevelWarn, "out of memory: %d process(es) killed for going over the sandbox's %d MB", st.OOMKills-seen, b.record().Spec.MemoryMB)
		e.opts.Logger.Warn("out of memory in sandbox", "sandbox", id, "kills", st.OOMKills-seen)
		seen = st.OOMKills
	}
}

// unwatch stops the watch goroutines. Call with b.op held.
func (b *box) unwatch() {
	if b.stop != nil {
		b.stop()
		b.stop = nil
	}
}

// markDead records that a sandbox ended by itself and frees its runtime and network,
// keeping its directory (record and logs) until it is killed. Call with b.op held.
func (e *Engine) markDead(ctx context.Context, b *box, rt runtime.Runtime, reason string) {
	b.unwatch()
	rec := b.record()
	id, rid := rec.Spec.ID, rec.rid()
	e.opts.Logger.Warn("sandbox ended", "sandbox", id, "reason", reason)
	b.log.eventAt(LevelError, "sandbox ended: %s", reason)
	b.log.flush()
	if rt != nil {
		if err := rt.Kill(ctx, rid); err != nil && !errors.Is(err, runtime.ErrNotFound) {
			e.opts.Logger.Error("clean up ended sandbox", "sandbox", id, "err", err)
		}
	}
	if err := e.opts.Network.Teardown(ctx, rid); err != nil {
		e.opts.Logger.Error("clean up ended sandbox's network", "sandbox", id, "err", err)
	}
	e.discharge(b)
	rec.State, rec.Reason, rec.Address = StateDead, reason, ""
	if err := b.save(rec); err != nil {
		e.opts.Logger.Error("record ended sandbox", "sandbox", id, "err", err)
	}
}

// destroy removes everything of a sandbox: runtime, network, files, handle. Call with
// b.op held.
func (e *Engine) destroy(ctx context.Context, b *box, rt runtime.Runtime) error {
	b.unwatch()
	rec := b.record()
	id, rid := rec.Spec.ID, rec.rid()
	var errs []error
	if rt != nil {
		if err := rt.Kill(ctx, rid); err != nil && !errors.Is(err, runtime.ErrNotFound) {
			errs = append(errs, err)
		}
	}
	if err := e.opts.Network.Teardown(ctx, rid); err != nil {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(b.dir); err != nil {
		errs = append(errs, err)
	}
	e.mu.Lock()
	if e.boxes[id] == b {
		delete(e.boxes, id)
	}
	e.dischargeLocked(b)
	e.mu.Unlock()
	return errors.Join(errs...)
}

// Kill ends a sandbox and removes everything it had on the node.
func (e *Engine) Kill(ctx context.Context, id string) error {
	b, err := e.lookup(id)
	if err != nil {
		return fmt.Errorf("kill sandbox %s: %w", id, err)
	}
	defer b.op.Unlock()
	defer e.envd.http.CloseIdleConnections() // its address may go to another sandbox
	rt, _ := e.runtimeFor(b.rec.Spec.RuntimeClass)
	if err := e.destroy(context.WithoutCancel(ctx), b, rt); err != nil {
		return fmt.Errorf("kill sandbox %s: %w", id, err)
	}
	return nil
}
