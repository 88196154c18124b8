package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"lelantos.dev/lelantos/internal/runtime"
)

// fileSaver is a runtime that can keep a sandbox's files without its memory, and
// boot a new sandbox with them (runtime.Config.FilesImage).
type fileSaver interface {
	SaveFiles(ctx context.Context, id, dir string) error
}

// Pause stops a running sandbox keeping its state. A runtime that checkpoints saves
// memory, processes and the writable layer to disk and frees everything else; one
// that cannot freezes the sandbox in place with its memory resident.
func (e *Engine) Pause(ctx context.Context, id string) (Status, error) {
	return e.pause(ctx, id, true)
}

// PauseFiles stops a running sandbox keeping only its files (the writable layer):
// its memory and processes are dropped and everything else is freed. Resume boots it
// fresh with those files. A runtime that cannot save files alone gives an error
// wrapping *runtime.UnsupportedError, and the sandbox keeps running.
func (e *Engine) PauseFiles(ctx context.Context, id string) (Status, error) {
	return e.pause(ctx, id, false)
}

func (e *Engine) pause(ctx context.Context, id string, memory bool) (Status, error) {
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
	fs, savesFiles := rt.(fileSaver)
	switch {
	case !memory && !savesFiles:
		return Status{}, fmt.Errorf("pause sandbox %s: %w", id,
			&runtime.UnsupportedError{Class: rt.Class(), Operation: "a pause that keeps only the files"})
	case memory && !rt.Capabilities().Checkpoint:
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
	kind, save := "images", func(dir string) error { return rt.Checkpoint(ctx, rid, dir) }
	if !memory {
		kind, save = "files", func(dir string) error { return fs.SaveFiles(ctx, rid, dir) }
	}
	dir := filepath.Join(b.dir, kind, strconv.Itoa(rec.Pauses+1))
	if err := save(dir); err != nil {
		_ = os.RemoveAll(dir)
		// The save failed before stopping the sandbox, or it stopped it half-way.
		if _, serr := rt.Stats(ctx, rid); serr == nil {
			rec.State = StateRunning
			_ = b.save(rec)
			e.watch(b, rt)
			return Status{}, fmt.Errorf("pause sandbox %s: %w", id, err)
		}
		e.markDead(ctx, b, rt, "pause failed: "+err.Error())
		return Status{}, fmt.Errorf("pause sandbox %s: %w", id, err)
	}
	old := []string{rec.Image, rec.Files}
	rec.Image, rec.Files = "", ""
	if memory {
		rec.Image = dir
	} else {
		rec.Files = dir
	}
	rec.State, rec.Pauses = StatePaused, rec.Pauses+1
	// The saved sandbox holds no memory or CPU until it is resumed.
	e.discharge(b)
	if err := b.save(rec); err != nil {
		return Status{}, fmt.Errorf("pause sandbox %s: %w", id, err)
	}
	// The previous pause's image is of no use now; removing a few hundred MB
	// takes tens of milliseconds, which the pause need not wait for.
	go func() {
		for _, o := range old {
			if o != "" {
				_ = os.RemoveAll(o)
			}
		}
	}()
	b.log.flush()
	if memory {
		b.log.event("sandbox paused (memory and files saved)")
	} else {
		b.log.event("sandbox paused (files saved; memory and processes dropped)")
	}
	return statusOf(rec), nil
}

// Resume brings a paused sandbox back: with its memory and files when its pause kept
// them, else booted fresh with its files, as Reboot does.
func (e *Engine) Resume(ctx context.Context, id string) (Status, error) {
	return e.resume(ctx, id, false)
}

// Reboot brings a paused sandbox back booted fresh with its files, whatever its pause
// kept: its processes start anew, as after a restart of a machine. A runtime that
// cannot save files alone gives an error wrapping *runtime.UnsupportedError.
func (e *Engine) Reboot(ctx context.Context, id string) (Status, error) {
	return e.resume(ctx, id, true)
}

func (e *Engine) resume(ctx context.Context, id string, fresh bool) (st Status, err error) {
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
	fs, savesFiles := rt.(fileSaver)
	fresh = fresh || rec.Files != ""
	if fresh && (!savesFiles || rec.Frozen) {
		return Status{}, fmt.Errorf("resume sandbox %s: %w", id,
			&runtime.UnsupportedError{Class: rt.Class(), Operation: "a resume that boots the sandbox fresh with its files"})
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
		if err != nil { // still paused, with what its pause saved
			e.discharge(b)
			if made := rec.Files; made != "" && made != b.record().Files {
				_ = os.RemoveAll(made)
			}
		}
	}()
	if err := e.attachVolumes(ctx, rec.Spec); err != nil {
		return Status{}, fmt.Errorf("resume sandbox %s: %w", id, err)
	}
	// The namespace survives a pause, but not a host reboot: Setup rebuilds it on
	// the same address if needed, then the address goes back on for gVisor.
	ep, err := e.opts.Network.Setup(ctx, rid, netOptions(rec.Spec))
	if err != nil {
		return Status{}, fmt.Errorf("resume sandbox %s: %w", id, networkError(err))
	}
	if err := e.opts.Network.Reapply(ctx, rid); err != nil {
		return Status{}, fmt.Errorf("resume sandbox %s: %w", id, err)
	}
	rec.Address, rec.NetNSPath = addrOf(ep.Address), ep.NetNSPath
	readyCtx, cancel := context.WithTimeout(ctx, e.opts.ReadyTimeout)
	defer cancel()
	if fresh {
		if err := e.bootWithFiles(ctx, b, rec, rt, fs); err != nil {
			return Status{}, fmt.Errorf("resume sandbox %s: %w", id, err)
		}
		if err := e.envd.waitHealthy(readyCtx, rec.Address); err != nil {
			_ = rt.Kill(ctx, rid)
			return Status{}, fmt.Errorf("resume sandbox %s: %w; console: %s", id, err, runtime.Tail(filepath.Join(b.dir, consoleFile), 512))
		}
		// A fresh daemon: it learns its settings, and the start command runs again.
		if err := e.envd.init(readyCtx, rec.Address, rec.Spec); err != nil {
			_ = rt.Kill(ctx, rid)
			return Status{}, fmt.Errorf("resume sandbox %s: %w", id, err)
		}
		if rec.Spec.StartCmd != "" {
			if _, err := e.envd.startCommand(readyCtx, rec.Address, rec.Spec.AccessToken, rec.Spec.StartCmd); err != nil {
				_ = rt.Kill(ctx, rid)
				return Status{}, fmt.Errorf("resume sandbox %s: %w", id, err)
			}
		}
		rec.Restored = false
	} else {
		if err := rt.Restore(ctx, rid, e.config(b, ep.NetNSPath), rec.Image); err != nil {
			return Status{}, fmt.Errorf("resume sandbox %s: %w", id, err)
		}
		if err := e.envd.waitHealthy(readyCtx, rec.Address); err != nil {
			_ = rt.Kill(ctx, rid)
			return Status{}, fmt.Errorf("resume sandbox %s: %w", id, err)
		}
	}
	rec.State = StateRunning
	if err := b.save(rec); err != nil {
		return Status{}, fmt.Errorf("resume sandbox %s: %w", id, err)
	}
	// What the pause saved stays until the next pause replaces it: a crash right now
	// must not leave a paused record without it.
	if fresh {
		b.log.event("sandbox resumed: booted fresh with its files")
	} else {
		b.log.event("sandbox resumed")
	}
	e.watch(b, rt)
	return statusOf(rec), nil
}

// bootWithFiles starts paused sandbox b fresh with its saved files, in the namespace
// rec names. A pause that kept memory has its checkpoint restored first, only for
// its files to be saved on their own; rec.Files is then set to them (the caller
// saves rec once the sandbox runs, and removes them if it does not). Call with b.op
// held.
func (e *Engine) bootWithFiles(ctx context.Context, b *box, rec *record, rt runtime.Runtime, fs fileSaver) error {
	rid := rec.rid()
	if rec.Files == "" {
		if err := rt.Restore(ctx, rid, e.config(b, rec.NetNSPath), rec.Image); err != nil {
			return err
		}
		dir := filepath.Join(b.dir, "files", strconv.Itoa(rec.Pauses)+"-from-image")
		_ = os.RemoveAll(dir)
		if err := fs.SaveFiles(ctx, rid, dir); err != nil {
			_ = rt.Kill(ctx, rid)
			_ = os.RemoveAll(dir)
			return err
		}
		rec.Files = dir
		// The restore took the address off again.
		if err := e.opts.Network.Reapply(ctx, rid); err != nil {
			return err
		}
	}
	cfg := e.config(b, rec.NetNSPath)
	cfg.FilesImage = rec.Files
	return rt.Start(ctx, rid, cfg)
}
