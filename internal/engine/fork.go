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
	"os"
	"path/filepath"
	"sync"
	"time"

	"lelantos.dev/lelantos/internal/runtime"
)

// ForkResult is the outcome of one fork: its status, or why it failed.
type ForkResult struct {
	Status Status
	Err    error
}

// forkParallel bounds how many forks of one call are restored at once.
const forkParallel = 4

// ForkEach starts new sandboxes from one image of sandbox srcID: each continues from
// that moment, with the source's memory, processes and files, but has its own id,
// network namespace and address, writable layer and daemon settings. A running
// source is checkpointed in place for it: it pauses briefly and runs on with its id,
// address and resources (connections into it are cut). A paused source's own image
// is used, and the source stays paused.
//
// Each spec needs an ID; its other fields default to the source's when zero (for
// AllowInternet: when false). The template tree, runtime class, CPU count, memory and
// disk size are part of the image: a spec may repeat them but not change them. A
// runtime that cannot checkpoint gives an error wrapping *runtime.UnsupportedError.
//
// The error is about the source or the specs, and then no fork was made; otherwise
// every fork has a result, in the order of specs, and fails or succeeds on its own
// (a full node fails the forks that do not fit with ErrNodeFull).
func (e *Engine) ForkEach(ctx context.Context, srcID string, specs []Spec) ([]ForkResult, error) {
	src, err := e.lookup(srcID)
	if err != nil {
		return nil, fmt.Errorf("fork sandbox %s: %w", srcID, err)
	}
	unlock := src.op.Unlock
	defer func() { unlock() }()
	ctx = context.WithoutCancel(ctx) // forks half made help nobody
	srec := src.record()
	rt, err := e.runtimeFor(srec.Spec.RuntimeClass)
	if err != nil {
		return nil, fmt.Errorf("fork sandbox %s: %w", srcID, err)
	}
	if !rt.Capabilities().Checkpoint {
		return nil, fmt.Errorf("fork sandbox %s: %w", srcID,
			&runtime.UnsupportedError{Class: rt.Class(), Operation: "fork (it cannot checkpoint a sandbox)"})
	}
	running := srec.State == StateRunning
	if !running && (srec.State != StatePaused || srec.Frozen || srec.Image == "") {
		return nil, fmt.Errorf("fork sandbox %s: it is %s, neither running nor paused with its memory: %w", srcID, srec.State, ErrState)
	}
	full, err := forkSpecs(srcID, srec.Spec, specs)
	if err != nil {
		return nil, fmt.Errorf("fork sandbox %s: %w", srcID, err)
	}
	from := imageSource{Spec: srec.Spec, EnvdDir: srec.EnvdDir, Image: srec.Image}
	if running {
		// The image is the forks' alone, outside the source's directory: the source
		// may go on, pause or end while they start.
		parent := filepath.Join(e.opts.DataDir, forkImagesDir)
		if err := os.MkdirAll(parent, 0o700); err != nil {
			return nil, fmt.Errorf("fork sandbox %s: %w", srcID, err)
		}
		dir, err := os.MkdirTemp(parent, srcID+"-")
		if err != nil {
			return nil, fmt.Errorf("fork sandbox %s: %w", srcID, err)
		}
		defer os.RemoveAll(dir)
		from.Image = filepath.Join(dir, "image")
		if err := e.checkpointInPlace(ctx, src, rt, from.Image); err != nil {
			return nil, fmt.Errorf("fork sandbox %s: %w", srcID, err)
		}
		src.log.event("sandbox checkpointed in place for %d fork(s)", len(full))
		unlock()
		unlock = func() {}
	}
	// Admitted and given networks in order, so that on a node with room for some the
	// first ones get it; then restored a few at a time.
	out := make([]ForkResult, len(full))
	boxes := make([]*box, len(full))
	for i, s := range full {
		boxes[i], out[i].Err = e.reserve(ctx, s, from.EnvdDir, rt)
	}
	sem := make(chan struct{}, forkParallel)
	var wg sync.WaitGroup
	for i, b := range boxes {
		if b == nil {
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i].Status, out[i].Err = e.startFromImage(ctx, from, rt, b, "sandbox forked from "+srcID)
		})
	}
	wg.Wait()
	return out, nil
}

// Fork is ForkEach, all or nothing: if one fork fails, the forks already made are
// removed again and the error names the one that failed.
func (e *Engine) Fork(ctx context.Context, srcID string, specs []Spec) ([]Status, error) {
	results, err := e.ForkEach(ctx, srcID, specs)
	if err != nil {
		return nil, err
	}
	var failed error
	for _, r := range results {
		if r.Err != nil && failed == nil {
			failed = r.Err
		}
	}
	if failed == nil {
		out := make([]Status, len(results))
		for i, r := range results {
			out[i] = r.Status
		}
		return out, nil
	}
	for _, r := range results {
		if r.Err == nil {
			if kerr := e.Kill(context.WithoutCancel(ctx), r.Status.Spec.ID); kerr != nil {
				e.opts.Logger.Error("remove fork after a failed fork", "sandbox", r.Status.Spec.ID, "err", kerr)
			}
		}
	}
	return nil, fmt.Errorf("fork sandbox %s: %w", srcID, failed)
}

// forkSpecs completes and checks the specs of forks of a source with spec src.
func forkSpecs(srcID string, src Spec, specs []Spec) ([]Spec, error) {
	if len(specs) == 0 {
		return nil, fmt.Errorf("%w: no forks asked for", ErrInvalid)
	}
	full := make([]Spec, len(specs))
	seen := map[string]bool{srcID: true}
	for i, s := range specs {
		var err error
		if full[i], err = forkSpec(src, s); err != nil {
			return nil, err
		}
		if seen[s.ID] {
			return nil, fmt.Errorf("fork %s: %w", s.ID, ErrExists)
		}
		seen[s.ID] = true
	}
	return full, nil
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
	out.ID, out.Snapshot = s.ID, ""
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
