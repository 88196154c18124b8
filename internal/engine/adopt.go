package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"lelantos.dev/lelantos/internal/runtime"
)

// adopt rebuilds the engine's handles from the records on disk after a node start.
// A sandbox still running in its runtime is watched again; a paused one whose image
// is whole stays paused; anything else is marked dead with the reason. Runtime
// sandboxes and networks that no record owns are removed.
func (e *Engine) adopt(ctx context.Context) error {
	live := map[string]map[string]runtime.Info{}
	for class, rt := range e.opts.Runtimes {
		infos, err := rt.List(ctx)
		if err != nil {
			return fmt.Errorf("adopt sandboxes: %w", err)
		}
		live[class] = map[string]runtime.Info{}
		for _, i := range infos {
			live[class][i.ID] = i
		}
	}
	root := filepath.Join(e.opts.DataDir, "sandboxes")
	entries, err := os.ReadDir(root)
	if err != nil {
		return fmt.Errorf("adopt sandboxes: %w", err)
	}
	for _, ent := range entries {
		dir := filepath.Join(root, ent.Name())
		rec, err := readRecord(dir)
		if err != nil || rec.rid() != ent.Name() {
			e.opts.Logger.Warn("removing a sandbox directory without a valid record", "dir", dir, "err", err)
			_ = os.RemoveAll(dir)
			continue
		}
		b := &box{dir: dir, rec: rec, log: newSandboxLog(dir, e.opts.LogCap)}
		rt := e.opts.Runtimes[rec.Spec.RuntimeClass]
		info, running := live[rec.Spec.RuntimeClass][rec.rid()]
		delete(live[rec.Spec.RuntimeClass], rec.rid())
		if rec.State == StateWarm {
			e.adoptWarm(ctx, b, rt, info, running)
			continue
		}
		e.boxes[rec.Spec.ID] = b
		e.adoptOne(ctx, b, rt, info, running)
		if holdsResources(b.rec) {
			e.charge(b)
		}
	}
	// Whatever a runtime holds that no record claims was being built when the node
	// stopped, or was left by a crash: remove it.
	for class, infos := range live {
		for id := range infos {
			e.opts.Logger.Warn("removing a sandbox no record owns", "sandbox", id, "runtime", class)
			if err := e.opts.Runtimes[class].Kill(ctx, id); err != nil && !errors.Is(err, runtime.ErrNotFound) {
				e.opts.Logger.Error("remove orphan sandbox", "sandbox", id, "err", err)
			}
		}
	}
	// Networks are named by runtime id.
	inUse := map[string]bool{}
	for _, b := range e.boxes {
		if b.rec.State != StateDead {
			inUse[b.rec.rid()] = true
		}
	}
	for _, pool := range e.warm {
		for _, b := range pool {
			inUse[b.rec.rid()] = true
		}
	}
	keep := func(rid string) bool { return inUse[rid] }
	if err := e.opts.Network.Reconcile(ctx, keep); err != nil {
		e.opts.Logger.Error("reconcile networks", "err", err)
	}
	return nil
}

func (e *Engine) adoptOne(ctx context.Context, b *box, rt runtime.Runtime, info runtime.Info, inRuntime bool) {
	rec := b.rec
	id := rec.rid()
	if rt == nil {
		e.markDead(ctx, b, nil, fmt.Sprintf("runtime %q is not configured on this node", rec.Spec.RuntimeClass))
		return
	}
	// What the last pause saved: a checkpoint, or the files alone.
	imageWhole := rec.Image != "" && fileExists(filepath.Join(rec.Image, "checkpoint.img")) ||
		rec.Files != "" && fileExists(filepath.Join(rec.Files, "fscheckpoint.pb"))
	switch rec.State {
	case StateDead:
		return
	case StateStarting:
		// Never acknowledged: the control plane treats it as failed.
		e.markDead(ctx, b, rt, "the node restarted while the sandbox was starting")
	case StateRunning, StateResuming:
		if inRuntime && info.Status == runtime.StatusRunning {
			rec.State = StateRunning
			_ = b.save(rec)
			b.log.event("sandbox re-adopted after a node restart")
			e.watch(b, rt)
			return
		}
		if rec.State == StateResuming && imageWhole {
			if inRuntime {
				_ = rt.Kill(ctx, id)
			}
			rec.State = StatePaused
			_ = b.save(rec)
			return
		}
		e.markDead(ctx, b, rt, "the sandbox was no longer running after a node restart")
	case StatePausing, StatePaused:
		switch {
		case rec.Frozen && inRuntime && info.Status == runtime.StatusFrozen:
			rec.State = StatePaused
			_ = b.save(rec)
		case rec.Frozen && inRuntime && info.Status == runtime.StatusRunning:
			_ = rt.Freeze(ctx, id)
			rec.State = StatePaused
			_ = b.save(rec)
		case !rec.Frozen && rec.State == StatePausing && inRuntime && info.Status == runtime.StatusRunning:
			rec.State = StateRunning // the checkpoint never finished
			_ = b.save(rec)
			e.watch(b, rt)
		case rec.State == StatePausing:
			// rec.Image, if any, is an older pause's: restoring it would go back in time.
			e.markDead(ctx, b, rt, "the node restarted while the sandbox was being paused")
		case !rec.Frozen && imageWhole:
			if inRuntime {
				_ = rt.Kill(ctx, id)
			}
			rec.State = StatePaused
			_ = b.save(rec)
		default:
			e.markDead(ctx, b, rt, "the paused sandbox's saved state was lost")
		}
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
