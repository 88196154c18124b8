package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"path/filepath"
	"time"

	"lelantos.dev/lelantos/internal/runtime"
)

// Fork starts new sandboxes from a paused sandbox's checkpoint image: each continues
// from the moment of the pause, with the source's memory, processes and files, but
// has its own id, network namespace and address, writable layer and daemon settings.
// The source stays paused and may be forked again or resumed.
//
// Each spec needs an ID; its other fields default to the source's when zero (for
// AllowInternet: when false). The template tree, runtime class, CPU count, memory and
// disk size are part of the image: a spec may repeat them but not change them. A
// runtime that cannot checkpoint gives an error wrapping *runtime.UnsupportedError.
//
// Forking is all or nothing: if one fork fails, the forks already made are removed
// again and the error names the one that failed.
func (e *Engine) Fork(ctx context.Context, srcID string, specs []Spec) ([]Status, error) {
	src, err := e.lookup(srcID)
	if err != nil {
		return nil, fmt.Errorf("fork sandbox %s: %w", srcID, err)
	}
	defer src.op.Unlock()
	srec := src.record()
	rt, err := e.runtimeFor(srec.Spec.RuntimeClass)
	if err != nil {
		return nil, fmt.Errorf("fork sandbox %s: %w", srcID, err)
	}
	if !rt.Capabilities().Checkpoint {
		return nil, fmt.Errorf("fork sandbox %s: %w", srcID,
			&runtime.UnsupportedError{Class: rt.Class(), Operation: "fork (it cannot checkpoint a sandbox)"})
	}
	if srec.State != StatePaused || srec.Frozen || srec.Image == "" {
		return nil, fmt.Errorf("fork sandbox %s: it is %s, not paused with a checkpoint: %w", srcID, srec.State, ErrState)
	}
	if len(specs) == 0 {
		return nil, fmt.Errorf("fork sandbox %s: %w: no forks asked for", srcID, ErrInvalid)
	}
	full := make([]Spec, len(specs))
	seen := map[string]bool{srcID: true}
	for i, s := range specs {
		if full[i], err = forkSpec(srec.Spec, s); err != nil {
			return nil, fmt.Errorf("fork sandbox %s: %w", srcID, err)
		}
		if seen[s.ID] {
			return nil, fmt.Errorf("fork sandbox %s: fork %s: %w", srcID, s.ID, ErrExists)
		}
		seen[s.ID] = true
	}
	out := make([]Status, 0, len(full))
	for _, s := range full {
		st, err := e.forkOne(ctx, src, srec, rt, s)
		if err != nil {
			for _, done := range out {
				if kerr := e.Kill(context.WithoutCancel(ctx), done.Spec.ID); kerr != nil {
					e.opts.Logger.Error("remove fork after a failed fork", "sandbox", done.Spec.ID, "err", kerr)
				}
			}
			return nil, fmt.Errorf("fork sandbox %s: %w", srcID, err)
		}
		out = append(out, st)
	}
	src.log.event("sandbox forked into %d new sandboxes", len(out))
	return out, nil
}

// forkSpec completes a fork's spec from its source's and checks it.
func forkSpec(src, s Spec) (Spec, error) {
	fixed := []struct {
		name      string
		got, want any
		zero      bool
	}{
		{"template rootfs", s.RootfsPath, src.RootfsPath, s.RootfsPath == ""},
		{"runtime class", s.RuntimeClass, src.RuntimeClass, s.RuntimeClass == ""},
		{"cpuCount", s.CPUCount, src.CPUCount, s.CPUCount == 0},
		{"memoryMB", s.MemoryMB, src.MemoryMB, s.MemoryMB == 0},
		{"diskSizeMB", s.DiskSizeMB, src.DiskSizeMB, s.DiskSizeMB == 0},
		{"snapshot image", s.SnapshotImage, src.SnapshotImage, s.SnapshotImage == ""},
	}
	for _, f := range fixed {
		if !f.zero && f.got != f.want {
			return Spec{}, fmt.Errorf("fork %s: %w: %s %v differs from the source's %v, which the image holds",
				s.ID, ErrInvalid, f.name, f.got, f.want)
		}
	}
	out := src
	out.ID = s.ID
	out.AllowInternet = src.AllowInternet || s.AllowInternet
	if s.TemplateID != "" {
		out.TemplateID = s.TemplateID
	}
	if s.AccessToken != "" {
		out.AccessToken = s.AccessToken
	}
	if s.DefaultUser != "" {
		out.DefaultUser = s.DefaultUser
	}
	if s.DefaultWorkdir != "" {
		out.DefaultWorkdir = s.DefaultWorkdir
	}
	if s.StartCmd != "" {
		out.StartCmd = s.StartCmd
	}
	// The daemon merges new variables into the ones it has.
	out.EnvVars = maps.Clone(src.EnvVars)
	if len(s.EnvVars) > 0 {
		if out.EnvVars == nil {
			out.EnvVars = map[string]string{}
		}
		maps.Copy(out.EnvVars, s.EnvVars)
	}
	if err := validate(out); err != nil {
		return Spec{}, fmt.Errorf("fork %s: %w", s.ID, err)
	}
	return out, nil
}

// forkOne restores one fork from the source's image. On failure it removes all it made.
// Call with src.op held.
func (e *Engine) forkOne(ctx context.Context, src *box, srec *record, rt runtime.Runtime, s Spec) (st Status, err error) {
	// The fork keeps the source's daemon: the image holds its open files.
	b := e.newBox(s, srec.EnvdDir)
	b.op.Lock()
	defer b.op.Unlock()
	if err := e.register(b); err != nil {
		return Status{}, fmt.Errorf("fork %s: %w", s.ID, err)
	}
	if err := e.admit(ctx, b); err != nil {
		e.unregister(b)
		return Status{}, fmt.Errorf("fork %s: %w", s.ID, err)
	}
	defer func() {
		if err != nil {
			if derr := e.destroy(context.WithoutCancel(ctx), b, rt); derr != nil {
				e.opts.Logger.Error("clean up failed fork", "sandbox", s.ID, "err", derr)
			}
		}
	}()
	rec, err := e.lay(ctx, b)
	if err != nil {
		return Status{}, fmt.Errorf("fork %s: %w", s.ID, err)
	}
	if err := rt.Restore(ctx, s.ID, e.config(b, rec.NetNSPath), srec.Image); err != nil {
		return Status{}, fmt.Errorf("fork %s: %w", s.ID, err)
	}
	readyCtx, cancel := context.WithTimeout(ctx, e.opts.ReadyTimeout)
	defer cancel()
	if err := e.envd.waitHealthy(readyCtx, rec.Address); err != nil {
		return Status{}, fmt.Errorf("fork %s: %w; console: %s", s.ID, err, runtime.Tail(filepath.Join(b.dir, consoleFile), 512))
	}
	// The restored daemon holds the source's settings; present the source's token to
	// give it the fork's.
	if err := e.envd.reinit(readyCtx, rec.Address, s, srec.Spec.AccessToken); err != nil {
		return Status{}, fmt.Errorf("fork %s: %w", s.ID, err)
	}
	rec.State = StateRunning
	if err := b.save(rec); err != nil {
		return Status{}, fmt.Errorf("fork %s: %w", s.ID, err)
	}
	b.log.event("sandbox forked from %s (runtime %s, %d CPU, %d MB memory, %d MB disk)",
		srec.Spec.ID, s.RuntimeClass, s.CPUCount, s.MemoryMB, s.DiskSizeMB)
	e.watch(b, rt)
	return statusOf(rec), nil
}

// reinit gives a restored daemon the settings of s, proving knowledge of the token it
// already holds with presented.
func (c *envdClient) reinit(ctx context.Context, addr string, s Spec, presented string) error {
	body, err := json.Marshal(initRequest{
		EnvVars: s.EnvVars, AccessToken: s.AccessToken,
		DefaultUser: s.DefaultUser, DefaultWorkdir: s.DefaultWorkdir, Timestamp: time.Now().UTC(),
	})
	if err != nil {
		return fmt.Errorf("init daemon at %s: %w", addr, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, envdURL(addr, "/init"), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("init daemon at %s: %w", addr, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if presented != "" {
		req.Header.Set("X-Access-Token", presented)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("init daemon at %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("init daemon at %s: %s: %w", addr, resp.Status, errors.New(string(bytes.TrimSpace(b))))
	}
	return nil
}
