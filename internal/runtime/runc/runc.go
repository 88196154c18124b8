// Package runc runs sandboxes as plain Linux containers through Debian's runc.
//
// It is the class for trusted, latency-critical work: starting is fast and pausing
// freezes the cgroup with memory resident, but processes share the host kernel and
// nothing can be checkpointed (CRIU does not work on every kernel), so Checkpoint and
// Restore return *runtime.UnsupportedError. The root is an overlay of the template's
// read-only tree under a tmpfs upper layer capped at DiskSizeMB.
package runc

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"golang.org/x/sys/unix"

	"lelantos.dev/lelantos/internal/runtime"
	"lelantos.dev/lelantos/internal/runtime/cgroups"
	"lelantos.dev/lelantos/internal/runtime/oci"
	"lelantos.dev/lelantos/internal/runtime/ocicli"
)

// Class is this runtime's isolation class name.
const Class = "runc"

// Options configures the runtime.
type Options struct {
	// Runc is the path of the runc binary; empty means "runc" from PATH.
	Runc string
	// StateDir is runc's --root, private to this runtime.
	StateDir string
	// Cgroups is the host's cgroup layout; zero means detect it.
	Cgroups *cgroups.Hierarchy
}

// Runtime is the runc runtime. Like runsc, runc's state directory is the record.
type Runtime struct {
	opts Options
	cg   cgroups.Hierarchy
	cli  ocicli.CLI
}

var _ runtime.Runtime = (*Runtime)(nil)

// New finds runc and returns the runtime.
func New(opts Options) (*Runtime, error) {
	if opts.Runc == "" {
		p, err := exec.LookPath("runc")
		if err != nil {
			return nil, fmt.Errorf("runc runtime: %w", err)
		}
		opts.Runc = p
	}
	if err := os.MkdirAll(opts.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("runc runtime: state dir: %w", err)
	}
	r := &Runtime{opts: opts, cg: cgroups.Detect("")}
	if opts.Cgroups != nil {
		r.cg = *opts.Cgroups
	}
	r.cli = ocicli.CLI{Binary: opts.Runc, Root: opts.StateDir, Cgroups: r.cg}
	return r, nil
}

// Class implements runtime.Runtime.
func (r *Runtime) Class() string { return Class }

// Capabilities implements runtime.Runtime: no checkpointing.
func (r *Runtime) Capabilities() runtime.Capabilities { return runtime.Capabilities{} }

// layout names the host paths of a sandbox's root filesystem.
type layout struct{ layer, upper, work, root, meminfo string }

func layoutOf(dir string) layout {
	l := filepath.Join(dir, "layer")
	return layout{
		layer: l, upper: filepath.Join(l, "upper"), work: filepath.Join(l, "work"),
		root: filepath.Join(dir, "rootfs"), meminfo: filepath.Join(dir, "meminfo"),
	}
}

// Start implements runtime.Runtime.
func (r *Runtime) Start(ctx context.Context, id string, cfg runtime.Config) (err error) {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("start sandbox %s: %w", id, err)
	}
	l := layoutOf(cfg.Dir)
	defer func() {
		if err != nil {
			r.cli.ForceDelete(id)
			unmountLayout(l)
			_ = r.cg.Remove(oci.CgroupPath(id))
		}
	}()
	root := cfg.RootfsPath
	if !cfg.WritableRoot {
		if err := mountLayout(l, cfg); err != nil {
			return fmt.Errorf("start sandbox %s: %w", id, err)
		}
		root = l.root
	} else if err := writeMeminfo(l.meminfo, cfg.MemoryMB); err != nil {
		return fmt.Errorf("start sandbox %s: %w", id, err)
	}
	spec := oci.Spec(id, cfg, root)
	// The kernel's /proc/meminfo shows the host; show the sandbox its own size.
	spec.Mounts = append(spec.Mounts, oci.BindMount(l.meminfo, "/proc/meminfo"))
	bundle := filepath.Join(cfg.Dir, "bundle")
	if err := oci.WriteBundle(bundle, spec); err != nil {
		return fmt.Errorf("start sandbox %s: %w", id, err)
	}
	console, err := os.OpenFile(cfg.ConsolePath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("start sandbox %s: console: %w", id, err)
	}
	defer console.Close()
	// A detached container inherits runc's stdio, so both go to the console file: a
	// pipe here would never close while the sandbox lives.
	cmd := exec.CommandContext(ctx, r.opts.Runc, "--root="+r.opts.StateDir, "run", "--detach", "--bundle", bundle, id)
	cmd.Stdout, cmd.Stderr = console, console
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("start sandbox %s: runc: %w: %s", id, err, runtime.Tail(cfg.ConsolePath, 1024))
	}
	return nil
}

// mountLayout mounts the size-capped tmpfs layer and the overlay root.
func mountLayout(l layout, cfg runtime.Config) error {
	if err := os.MkdirAll(l.layer, 0o700); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", l.layer, "tmpfs", 0, fmt.Sprintf("size=%dm,mode=0700", cfg.DiskSizeMB)); err != nil {
		return fmt.Errorf("mount layer: %w", err)
	}
	for _, d := range []string{l.upper, l.work, l.root} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", cfg.RootfsPath, l.upper, l.work)
	if err := unix.Mount("overlay", l.root, "overlay", 0, opts); err != nil {
		return fmt.Errorf("mount root overlay: %w", err)
	}
	return writeMeminfo(l.meminfo, cfg.MemoryMB)
}

// writeMeminfo writes the /proc/meminfo a sandbox of memoryMB sees.
func writeMeminfo(path string, memoryMB int) error {
	kb := memoryMB * 1024
	info := fmt.Sprintf("MemTotal:       %d kB\nMemFree:        %d kB\nMemAvailable:   %d kB\nBuffers:               0 kB\nCached:                0 kB\nSwapTotal:             0 kB\nSwapFree:              0 kB\n", kb, kb, kb)
	return os.WriteFile(path, []byte(info), 0o444)
}

func unmountLayout(l layout) {
	_ = unix.Unmount(l.root, unix.MNT_DETACH)
	_ = unix.Unmount(l.layer, unix.MNT_DETACH)
}

// Checkpoint implements runtime.Runtime: runc cannot.
func (r *Runtime) Checkpoint(ctx context.Context, id, dir string) error {
	if _, err := r.cli.State(ctx, id); err != nil {
		return fmt.Errorf("checkpoint sandbox %s: %w", id, err)
	}
	return &runtime.UnsupportedError{Class: Class, Operation: "checkpoint (pause with memory to disk, fork)"}
}

// Restore implements runtime.Runtime: runc cannot.
func (r *Runtime) Restore(ctx context.Context, id string, cfg runtime.Config, dir string) error {
	return &runtime.UnsupportedError{Class: Class, Operation: "restore from a checkpoint (resume from disk, fork)"}
}

// Freeze implements runtime.Runtime with the cgroup freezer.
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
	st, err := r.cli.State(ctx, id)
	if err != nil {
		return fmt.Errorf("kill sandbox %s: %w", id, err)
	}
	r.cli.ForceDelete(id)
	if st.Bundle != "" {
		unmountLayout(layoutOf(filepath.Dir(st.Bundle)))
	}
	if err := r.cg.Remove(oci.CgroupPath(id)); err != nil {
		return fmt.Errorf("kill sandbox %s: %w", id, err)
	}
	return nil
}

// Stats implements runtime.Runtime.
func (r *Runtime) Stats(ctx context.Context, id string) (runtime.Stats, error) {
	return r.cli.Stats(id)
}

// Wait implements runtime.Runtime.
func (r *Runtime) Wait(ctx context.Context, id string) (runtime.Exit, error) {
	return r.cli.Wait(ctx, id)
}

// List implements runtime.Runtime.
func (r *Runtime) List(ctx context.Context) ([]runtime.Info, error) { return r.cli.List(ctx) }
