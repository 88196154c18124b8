// Package runc runs sandboxes as Linux containers through Debian's runc.
//
// It is the class for trusted, latency-critical work: starting is fast and pausing
// freezes the cgroup with memory resident, but processes share the host kernel and
// nothing can be checkpointed (CRIU does not work on every kernel), so Checkpoint and
// Restore return *runtime.UnsupportedError.
//
// Sharing the kernel, a sandbox is confined by it (see oci.Confine): a user namespace
// in which root is an unprivileged host user, with an id range of its own per
// sandbox (65536 ids from Options.IDBase); the container ecosystem's default seccomp
// profile and capability set (no CAP_SYS_ADMIN, SYS_MODULE, SYS_RAWIO or SYS_PTRACE);
// the default masked and read-only paths of /proc and /sys; cgroup, pid, mount, IPC,
// UTS and network namespaces; and no new privileges, so set-user-ID programs cannot
// raise a process's ids: sudo does not work in a runc sandbox (it does in gVisor).
//
// The root is an overlay whose lower layer is the template's read-only tree mounted
// idmapped into the sandbox's id range (the tree itself stays owned by host root, and
// root owns /etc inside while user owns /home/user), under a tmpfs upper layer
// capped at DiskSizeMB and owned by the sandbox's root.
package runc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"lelantos.dev/lelantos/internal/runtime"
	"lelantos.dev/lelantos/internal/runtime/cgroups"
	"lelantos.dev/lelantos/internal/runtime/oci"
	"lelantos.dev/lelantos/internal/runtime/ocicli"
)

// Class is this runtime's isolation class name.
const Class = "runc"

// DefaultRootsDir is where sandboxes' roots are mounted unless Options say otherwise.
const DefaultRootsDir = "/run/lelantos/runc"

// Options configures the runtime.
type Options struct {
	// Runc is the path of the runc binary; empty means "runc" from PATH.
	Runc string
	// StateDir is runc's --root, private to this runtime.
	StateDir string
	// Cgroups is the host's cgroup layout; zero means detect it.
	Cgroups *cgroups.Hierarchy
	// RootsDir is where sandboxes' roots are mounted while they run; zero means
	// DefaultRootsDir. Every directory above it must be searchable by every user.
	RootsDir string
	// IDBase is the first host id of the sandboxes' id ranges; zero means
	// DefaultIDBase. Sandbox n (counting those running at once) gets host ids
	// IDBase+n*IDRangeSize and on as its ids 0..65535.
	IDBase uint32
	// IDRanges is how many ranges there are; zero means DefaultIDRanges.
	IDRanges int
}

// Runtime is the runc runtime. Like runsc, runc's state directory is the record.
type Runtime struct {
	opts Options
	cg   cgroups.Hierarchy
	cli  ocicli.CLI
	ids  *idLeases
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
	if opts.RootsDir == "" {
		opts.RootsDir = DefaultRootsDir
	}
	if err := searchableDir(opts.RootsDir); err != nil {
		return nil, fmt.Errorf("runc runtime: roots dir: %w", err)
	}
	if opts.IDBase == 0 {
		opts.IDBase = DefaultIDBase
	}
	if opts.IDRanges == 0 {
		opts.IDRanges = DefaultIDRanges
	}
	if opts.IDRanges < 0 {
		return nil, fmt.Errorf("runc runtime: IDRanges %d must be positive", opts.IDRanges)
	}
	if uint64(opts.IDBase)+uint64(opts.IDRanges)*IDRangeSize > 1<<32-1 {
		return nil, fmt.Errorf("runc runtime: %d id ranges from host id %d do not fit below 2^32-1", opts.IDRanges, opts.IDBase)
	}
	r := &Runtime{opts: opts, cg: cgroups.Detect(""),
		ids: &idLeases{dir: opts.StateDir, base: opts.IDBase, ranges: opts.IDRanges, starting: map[string]bool{}}}
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

// Start implements runtime.Runtime.
func (r *Runtime) Start(ctx context.Context, id string, cfg runtime.Config) (err error) {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("start sandbox %s: %w", id, err)
	}
	ids, err := r.ids.acquire(ctx, id, r.live)
	if err != nil {
		return fmt.Errorf("start sandbox %s: %w", id, err)
	}
	defer r.ids.done(id)
	l := layoutOf(r.opts.RootsDir, cfg.Dir)
	defer func() {
		if err != nil {
			r.cli.ForceDelete(id)
			_ = unmountLayout(l)
			_ = r.cg.Remove(oci.CgroupPath(id))
			_ = r.ids.release(id)
		}
	}()
	if err := mountLayout(l, cfg, ids); err != nil {
		return fmt.Errorf("start sandbox %s: %w", id, err)
	}
	if cfg.Mounts, err = mountVolumes(l, cfg.Mounts, ids); err != nil {
		return fmt.Errorf("start sandbox %s: %w", id, err)
	}
	spec, err := r.spec(id, cfg, l, ids)
	if err != nil {
		return fmt.Errorf("start sandbox %s: %w", id, err)
	}
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
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("start sandbox %s: %w", id, err)
	}
	stepCtx, cancel := ocicli.StepContext(ctx)
	defer cancel()
	cmd := exec.CommandContext(stepCtx, r.opts.Runc, "--root="+r.opts.StateDir, "run", "--detach", "--bundle", bundle, id)
	cmd.Stdout, cmd.Stderr = console, console
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("start sandbox %s: runc: %w: %s", id, err, runtime.Tail(cfg.ConsolePath, 1024))
	}
	return nil
}

// spec is the OCI spec of a sandbox whose root is mounted at l.root: the common one,
// confined to its user namespace of ids (see oci.Confine), with the sandbox's own
// /proc/meminfo and, in a network namespace of the engine's, that namespace's sysfs.
func (r *Runtime) spec(id string, cfg runtime.Config, l layout, ids oci.IDRange) (*specs.Spec, error) {
	spec := oci.Spec(id, cfg, l.root)
	if cfg.NetNSPath != "" {
		for i, m := range spec.Mounts {
			if m.Destination == "/sys" {
				spec.Mounts[i] = specs.Mount{Destination: "/sys", Type: "bind", Source: l.sys,
					Options: []string{"rbind", "ro", "nosuid", "noexec", "nodev"}}
			}
		}
	}
	// The kernel's /proc/meminfo shows the host; show the sandbox its own size.
	spec.Mounts = append(spec.Mounts, oci.BindMount(l.meminfo, "/proc/meminfo"))
	if err := oci.Confine(spec, ids); err != nil {
		return nil, err
	}
	return spec, nil
}

// live lists the sandboxes runc holds.
func (r *Runtime) live(ctx context.Context) (map[string]bool, error) {
	infos, err := r.cli.List(ctx)
	if err != nil {
		return nil, err
	}
	m := make(map[string]bool, len(infos))
	for _, i := range infos {
		m[i.ID] = true
	}
	return m, nil
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
		// A lease left by a sandbox runc lost goes with it.
		if errors.Is(err, runtime.ErrNotFound) {
			_ = r.ids.release(id)
		}
		return fmt.Errorf("kill sandbox %s: %w", id, err)
	}
	r.cli.ForceDelete(id)
	var errs []error
	if st.Bundle != "" {
		errs = append(errs, unmountLayout(layoutOf(r.opts.RootsDir, filepath.Dir(st.Bundle))))
	}
	errs = append(errs, r.cg.Remove(oci.CgroupPath(id)), r.ids.release(id))
	if err := errors.Join(errs...); err != nil {
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

// Wait implements runtime.Runtime.
func (r *Runtime) Wait(ctx context.Context, id string) (runtime.Exit, error) {
	return r.cli.Wait(ctx, id)
}

// List implements runtime.Runtime.
func (r *Runtime) List(ctx context.Context) ([]runtime.Info, error) { return r.cli.List(ctx) }
