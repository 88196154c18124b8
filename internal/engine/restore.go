package engine

import (
	"context"
	"fmt"
	"path/filepath"

	"lelantos.dev/lelantos/internal/runtime"
)

// imageSource is a checkpoint image new sandboxes start from: the image, and the
// spec and daemon directory the sandbox it was taken of had (its daemon, in the
// image, holds Spec.AccessToken and the daemon's open files).
type imageSource struct {
	Spec    Spec
	EnvdDir string
	Image   string
}

// reserve makes new sandbox s, running the daemon in envdDir, up to its start:
// registered under its id, charged with its resources, with its directory, record
// and network. Its operation lock stays held for startFromImage. On failure nothing
// of it is left.
func (e *Engine) reserve(ctx context.Context, s Spec, envdDir string, rt runtime.Runtime) (*box, error) {
	b := e.newBox(s, envdDir)
	b.op.Lock()
	if err := e.register(b); err != nil {
		b.op.Unlock()
		return nil, fmt.Errorf("fork %s: %w", s.ID, err)
	}
	if err := e.admit(ctx, b); err != nil {
		e.unregister(b)
		b.op.Unlock()
		return nil, fmt.Errorf("fork %s: %w", s.ID, err)
	}
	if _, err := e.lay(ctx, b); err != nil {
		if derr := e.destroy(context.WithoutCancel(ctx), b, rt); derr != nil {
			e.opts.Logger.Error("clean up failed fork", "sandbox", s.ID, "err", derr)
		}
		b.op.Unlock()
		return nil, fmt.Errorf("fork %s: %w", s.ID, err)
	}
	return b, nil
}

// startFromImage restores reserved sandbox b from an image and gives its daemon the
// settings of its spec; event is the first line of its log. On failure it removes
// all it made. It releases b's operation lock.
func (e *Engine) startFromImage(ctx context.Context, from imageSource, rt runtime.Runtime, b *box, event string) (st Status, err error) {
	defer b.op.Unlock()
	s := b.record().Spec
	defer func() {
		if err != nil {
			if derr := e.destroy(context.WithoutCancel(ctx), b, rt); derr != nil {
				e.opts.Logger.Error("clean up failed fork", "sandbox", s.ID, "err", derr)
			}
		}
	}()
	rec := b.record()
	if err := e.runtimeRestore(ctx, rt, s.ID, e.config(b, rec.NetNSPath), from.Image); err != nil {
		return Status{}, fmt.Errorf("fork %s: %w", s.ID, err)
	}
	readyCtx, cancel := context.WithTimeout(ctx, e.opts.ReadyTimeout)
	defer cancel()
	if err := e.envd.waitHealthy(readyCtx, rec.Address); err != nil {
		return Status{}, fmt.Errorf("fork %s: %w; console: %s", s.ID, err, runtime.Tail(filepath.Join(b.dir, consoleFile), 512))
	}
	// The restored daemon holds the source's settings; present the source's token to
	// give it the new sandbox's.
	if err := e.envd.reinit(readyCtx, rec.Address, s, from.Spec.AccessToken); err != nil {
		return Status{}, fmt.Errorf("fork %s: %w", s.ID, err)
	}
	rec.State = StateRunning
	if err := b.save(rec); err != nil {
		return Status{}, fmt.Errorf("fork %s: %w", s.ID, err)
	}
	b.log.event("%s (runtime %s, %d CPU, %d MB memory, %d MB disk)", event, s.RuntimeClass, s.CPUCount, s.MemoryMB, s.DiskSizeMB)
	e.watch(b, rt)
	return statusOf(rec), nil
}
