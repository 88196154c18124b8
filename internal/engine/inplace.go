package engine

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"lelantos.dev/lelantos/internal/runtime"
)

// checkpointInPlace saves running sandbox b (memory, processes, files) into image and
// starts it again from there, so that it goes on with its id, address, resources and
// daemon; connections into it are cut. If it cannot be started again it is marked
// dead. Call with b.op held.
func (e *Engine) checkpointInPlace(ctx context.Context, b *box, rt runtime.Runtime, image string) error {
	rec := b.record()
	rid := rec.rid()
	b.unwatch()
	defer e.envd.http.CloseIdleConnections()
	if err := rt.Checkpoint(ctx, rid, image); err != nil {
		_ = os.RemoveAll(image)
		if _, serr := rt.Stats(ctx, rid); serr == nil {
			e.watch(b, rt) // the checkpoint failed before stopping it
			return fmt.Errorf("checkpoint in place: %w", err)
		}
		e.markDead(ctx, b, rt, "checkpoint in place failed: "+err.Error())
		return fmt.Errorf("checkpoint in place: %w", err)
	}
	restart := func() error {
		if err := e.opts.Network.Reapply(ctx, rid); err != nil {
			return err
		}
		if err := rt.Restore(ctx, rid, e.config(b, rec.NetNSPath), image); err != nil {
			return err
		}
		readyCtx, cancel := context.WithTimeout(ctx, e.opts.ReadyTimeout)
		defer cancel()
		return e.envd.waitHealthy(readyCtx, rec.Address)
	}
	if err := restart(); err != nil {
		e.markDead(ctx, b, rt, "restart after a checkpoint in place failed: "+err.Error())
		return fmt.Errorf("checkpoint in place: start the sandbox again: %w", err)
	}
	e.watch(b, rt)
	return nil
}

// cleanPartial removes what snapshots and forks being made when the node stopped
// left: snapshot directories not completed, and the images of forks.
func (e *Engine) cleanPartial() error {
	if err := os.RemoveAll(filepath.Join(e.opts.DataDir, forkImagesDir)); err != nil {
		return err
	}
	root := filepath.Join(e.opts.DataDir, snapshotsDir)
	ents, err := os.ReadDir(root)
	if err != nil {
		return err
	}
	for _, ent := range ents {
		if strings.HasSuffix(ent.Name(), partialSuffix) {
			if err := os.RemoveAll(filepath.Join(root, ent.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// dirSize is the size of the regular files under dir.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
