// Package gvisor runs sandboxes in gVisor's user-space kernel through the runsc binary.
//
// Each sandbox runs on the systrap platform with its own network stack
// (--network=sandbox) in the network namespace the engine made for it. Its root is the
// template's read-only tree under a gVisor overlay whose upper layer lives in a file
// store in the sandbox's directory and is capped at DiskSizeMB; the layer is part of a
// checkpoint image, so files written before a pause are there after every resume and in
// every fork. Checkpoint and Restore are runsc's, so memory and processes are kept;
// SaveFiles keeps the layer alone, without memory or processes, for a new sandbox to
// boot with (a sandbox paused with its files only).
// Wait reports the first process's exit status, learned through a pidfd on the
// sandbox's process (see exit.go).
package gvisor

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"lelantos.dev/lelantos/internal/runtime"
	"lelantos.dev/lelantos/internal/runtime/cgroups"
	"lelantos.dev/lelantos/internal/runtime/oci"
	"lelantos.dev/lelantos/internal/runtime/ocicli"
)

// Class is this runtime's isolation class name.
const Class = "gvisor"

// Options configures the runtime.
type Options struct {
	// Runsc is the path of the runsc binary.
	Runsc string
	// StateDir is runsc's --root: where it keeps container state. It must be private to
	// this runtime and survive node restarts for re-adoption.
	StateDir string
	// Platform is runsc's --platform; empty means "systrap".
	Platform string
	// DebugLogDir, when set, receives runsc's debug logs.
	DebugLogDir string
	// Cgroups is the host's cgroup layout; zero means detect it.
	Cgroups *cgroups.Hierarchy
}

// Runtime is the gVisor runtime. runsc's state directory is the record, so a new
// Runtime over the same StateDir sees every sandbox. In memory it only keeps a pidfd
// per sandbox it started, to learn the exit status; for a sandbox that ended while
// no Runtime watched it, Wait reports code -1.
type Runtime struct {
	opts Options
	cg   cgroups.Hierarchy
	cli  ocicli.CLI

	mu      sync.Mutex
	watches map[string]*pidWatch
	// cleaning holds, by sandbox, the removal of a checkpointed sandbox's runsc
	// state and cgroup, done after Checkpoint returns; closed when done.
	cleaning map[string]chan struct{}
}

var _ runtime.Runtime = (*Runtime)(nil)

// New checks that runsc can be run and returns the runtime.
func New(opts Options) (*Runtime, error) {
	if opts.Platform == "" {
		opts.Platform = "systrap"
	}
	if _, err := os.Stat(opts.Runsc); err != nil {
		return nil, fmt.Errorf("gvisor runtime: runsc: %w", err)
	}
	if err := os.MkdirAll(opts.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("gvisor runtime: state dir: %w", err)
	}
	r := &Runtime{opts: opts, cg: cgroups.Detect(""), watches: map[string]*pidWatch{}, cleaning: map[string]chan struct{}{}}
	if opts.Cgroups != nil {
		r.cg = *opts.Cgroups
	}
	r.cli = ocicli.CLI{Binary: opts.Runsc, Root: opts.StateDir, Cgroups: r.cg}
	return r, nil
}

// Class implements runtime.Runtime.
func (r *Runtime) Class() string { return Class }

// Capabilities implements runtime.Runtime: gVisor checkpoints.
func (r *Runtime) Capabilities() runtime.Capabilities {
	return runtime.Capabilities{Checkpoint: true}
}

// globalFlags are runsc's flags for one sandbox; the overlay flag carries the disk cap.
func (r *Runtime) globalFlags(cfg runtime.Config) []string {
	network := "sandbox"
	if cfg.NetNSPath == "" {
		network = "none"
	}
	f := []string{
		"--root=" + r.opts.StateDir,
		"--platform=" + r.opts.Platform,
		"--network=" + network,
		"--cpu-num-from-quota",
		// Set-user-ID programs such as sudo change ids inside the sandbox's own
		// kernel; nothing of the host is gained.
		"--allow-suid",
		fmt.Sprintf("--overlay2=root:dir=%s,size=%dm", cfg.Dir, cfg.DiskSizeMB),
	}
	if cfg.WritableRoot {
		f[len(f)-1] = "--overlay2=none"
	}
	if r.opts.DebugLogDir != "" {
		f = append(f, "--debug", "--debug-log="+r.opts.DebugLogDir+"/")
	}
	return f
}

// memoryHeadroom is what the host cgroup allows beyond the sandbox's memory: the
// Sentry and the gofer are charged to it too.
func memoryHeadroom(memoryMB int) int64 {
	extra := max(memoryMB/4, 96)
	return int64(memoryMB+extra) << 20
}

// Start implements runtime.Runtime.
func (r *Runtime) Start(ctx context.Context, id string, cfg runtime.Config) error {
	return r.launch(ctx, "start", id, cfg, "")
}

// Restore implements runtime.Runtime.
func (r *Runtime) Restore(ctx context.Context, id string, cfg runtime.Config, dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "checkpoint.img")); err != nil {
		return fmt.Errorf("restore sandbox %s: image: %w", id, err)
	}
	return r.launch(ctx, "restore", id, cfg, dir)
}

// launch runs or restores sandbox id; on any failure it removes what it made.
func (r *Runtime) launch(ctx context.Context, op, id string, cfg runtime.Config, image string) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%s sandbox %s: %w", op, id, err)
	}
	if err := r.awaitCleanup(ctx, id); err != nil {
		return fmt.Errorf("%s sandbox %s: %w", op, id, err)
	}
	bundle := filepath.Join(cfg.Dir, "bundle")
	if err := oci.WriteBundle(bundle, oci.Spec(id, cfg, cfg.RootfsPath)); err != nil {
		return fmt.Errorf("%s sandbox %s: %w", op, id, err)
	}
	console, err := os.OpenFile(cfg.ConsolePath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("%s sandbox %s: console: %w", op, id, err)
	}
	defer console.Close()
	fail := func(err error) error {
		r.unwatch(id)
		r.cli.ForceDelete(id)
		_ = r.cg.Remove(oci.CgroupPath(id))
		return fmt.Errorf("%s sandbox %s: %w", op, id, err)
	}
	flags := r.globalFlags(cfg)
	runsc := func(args ...string) error {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("before runsc %s: %w", args[0], err)
		}
		stepCtx, cancel := ocicli.StepContext(ctx)
		defer cancel()
		cmd := exec.CommandContext(stepCtx, r.opts.Runsc, slices.Concat(flags, args)...)
		cmd.Stdin = nil
		cmd.Stdout = console
		// runsc's own errors go to stderr before the sandbox starts; the sandbox's
		// first process gets the console for both streams.
		cmd.Stderr = console
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("runsc %s: %w: %s", args[0], err, runtime.Tail(cfg.ConsolePath, 1024))
		}
		return nil
	}
	// runsc writes the sandbox process's pid here, so that watching it needs no
	// runsc state.
	pidFile := filepath.Join(cfg.Dir, "runsc.pid")
	_ = os.Remove(pidFile)
	if image == "" {
		// Created first, so that the process is watched before the first process can
		// exit: its status is then never lost.
		if err := runsc(createArgs(cfg, bundle, pidFile, id)...); err != nil {
			return fail(err)
		}
		if err := r.watchFrom(ctx, id, pidFile); err != nil {
			return fail(err)
		}
		if err := r.cg.SetMemoryLimit(oci.CgroupPath(id), memoryHeadroom(cfg.MemoryMB)); err != nil {
			return fail(err)
		}
		if err := runsc("start", id); err != nil {
			return fail(err)
		}
		return nil
	}
	if err := runsc("restore", "--detach", "--image-path", image, "--bundle", bundle, "--pid-file", pidFile, id); err != nil {
		return fail(err)
	}
	if err := r.cg.SetMemoryLimit(oci.CgroupPath(id), memoryHeadroom(cfg.MemoryMB)); err != nil {
		return fail(err)
	}
	_ = r.watchFrom(ctx, id, pidFile) // a restored process that already ended reports code -1
	return nil
}

// Checkpoint implements runtime.Runtime.
func (r *Runtime) Checkpoint(ctx context.Context, id, dir string) error {
	pid, err := r.pidOf(ctx, id)
	if err != nil {
		return fmt.Errorf("checkpoint sandbox %s: %w", id, err)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return fmt.Errorf("checkpoint sandbox %s: %w", id, err)
	}
	if _, err := r.cli.Run(ctx, "checkpoint", "--image-path", dir, id); err != nil {
		return fmt.Errorf("checkpoint sandbox %s: %w", id, err)
	}
	// runsc returns before the sandbox process has exited, and reports it running
	// until whoever inherited it reaps it, which a host's init may do only seconds
	// later. The process's pidfd says when it has exited, reaped or not.
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if pid > 0 {
		if err := runtime.WaitPid(waitCtx, pid); err != nil {
			return fmt.Errorf("checkpoint sandbox %s: the sandbox did not stop: %w", id, err)
		}
	}
	r.unwatch(id)
	// The image is complete and the sandbox gone: its runsc state and cgroup are
	// removed after the return, and a start, restore or kill of id waits for it.
	r.cleanupLater(id)
	return nil
}

// Freeze implements runtime.Runtime.
func (r *Runtime) Freeze(ctx context.Context, id string) error {
	if _, err := r.cli.Run(ctx, "pause", id); err != nil {
		return fmt.Errorf("freeze sandbox %s: %w", id, err)
	}
	return nil
}

// Thaw implements runtime.Runtime.
func (r *Runtime) Thaw(ctx context.Context, id string) error {
	if _, err := r.cli.Run(ctx, "resume", id); err != nil {
		return fmt.Errorf("thaw sandbox %s: %w", id, err)
	}
	return nil
}

// Kill implements runtime.Runtime.
func (r *Runtime) Kill(ctx context.Context, id string) error {
	r.unwatch(id)
	if err := r.awaitCleanup(ctx, id); err != nil {
		return fmt.Errorf("kill sandbox %s: %w", id, err)
	}
	if _, err := r.cli.State(ctx, id); err != nil {
		_ = r.cg.Remove(oci.CgroupPath(id))
		return fmt.Errorf("kill sandbox %s: %w", id, err)
	}
	r.cli.ForceDelete(id)
	if st, err := r.cli.State(ctx, id); err == nil {
		return fmt.Errorf("kill sandbox %s: still %s after delete", id, st.Status)
	}
	if err := r.cg.Remove(oci.CgroupPath(id)); err != nil {
		return fmt.Errorf("kill sandbox %s: %w", id, err)
	}
	return nil
}

// SetCPUWeight implements runtime.Runtime.
func (r *Runtime) SetCPUWeight(ctx context.Context, id string, weight uint64) error {
	return r.cli.SetCPUWeight(id, weight)
}

// Stats implements runtime.Runtime.
func (r *Runtime) Stats(ctx context.Context, id string) (runtime.Stats, error) {
	return r.cli.Stats(id)
}

// Wait implements runtime.Runtime: Code is the first process's exit status (128+n
// when a signal n ended it), or -1 when the sandbox ended while this Runtime did not
// watch it.
func (r *Runtime) Wait(ctx context.Context, id string) (runtime.Exit, error) {
	w := r.acquire(id)
	if w == nil {
		if err := r.watch(ctx, id); err == nil {
			w = r.acquire(id)
		}
	}
	if w == nil {
		return r.cli.Wait(ctx, id) // stopped already, or not there
	}
	code, err := w.wait(ctx)
	r.release(w)
	if err != nil {
		return runtime.Exit{}, fmt.Errorf("wait for sandbox %s: %w", id, err)
	}
	exit := runtime.Exit{Code: code, Reason: "exited"}
	if code >= 0 {
		exit.Reason = fmt.Sprintf("exited with code %d", code)
	}
	if n, err := r.cg.OOMKills(oci.CgroupPath(id)); err == nil && n > 0 {
		exit.OOMKilled = true
		exit.Reason = "out of memory: the sandbox used more than its memory limit"
	}
	return exit, nil
}

// List implements runtime.Runtime.
func (r *Runtime) List(ctx context.Context) ([]runtime.Info, error) { return r.cli.List(ctx) }
