// Package runtime defines how one node runs sandboxes of one isolation class.
//
// A Runtime turns a read-only template tree and a Config into a running sandbox whose
// first process is the in-sandbox daemon. Implementations live below this package
// (gvisor, runc) and all pass the conformance suite in package conformance. The engine
// owns everything around a runtime: network namespaces, addresses, the daemon, records.
package runtime

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Runtime runs sandboxes of one isolation class. Sandbox ids are the engine's; a
// runtime keeps its own state under its root directory so that a restarted node can
// list and re-adopt what is still there. Every method is safe for concurrent use on
// different ids; callers serialize calls on one id.
type Runtime interface {
	// Class names the isolation class, e.g. "gvisor" or "runc".
	Class() string
	// Capabilities reports what the runtime supports.
	Capabilities() Capabilities
	// Start creates and starts sandbox id. On error nothing of it is left behind.
	Start(ctx context.Context, id string, cfg Config) error
	// Checkpoint saves the sandbox's memory, processes, open files and writable layer
	// into the empty or absent directory dir, then stops and deletes the sandbox.
	// A runtime without checkpointing returns an *UnsupportedError.
	Checkpoint(ctx context.Context, id, dir string) error
	// Restore starts sandbox id from an image made by Checkpoint. The image may come
	// from another id: that is a fork, and cfg gives the new sandbox's identity.
	Restore(ctx context.Context, id string, cfg Config, dir string) error
	// Freeze stops every process of the sandbox in place; memory stays resident.
	Freeze(ctx context.Context, id string) error
	// Thaw undoes Freeze.
	Thaw(ctx context.Context, id string) error
	// Kill stops the sandbox and removes all it had on the host. Killing an unknown id
	// returns ErrNotFound; killing a sandbox that already exited cleans it up.
	Kill(ctx context.Context, id string) error
	// Stats samples the sandbox's resource use now.
	Stats(ctx context.Context, id string) (Stats, error)
	// Wait blocks until the sandbox has exited or ctx is done.
	Wait(ctx context.Context, id string) (Exit, error)
	// List reports the sandboxes this runtime holds on the host, for re-adoption.
	List(ctx context.Context) ([]Info, error)
	// SetCPUWeight changes the sandbox's weight in contended CPU time (see
	// Config.CPUWeight) while it runs.
	SetCPUWeight(ctx context.Context, id string, weight uint64) error
}

// CPU weights of sandboxes, in cgroup v1 cpu.shares units: the share of a busy
// CPU a sandbox gets beside others is its weight over the sum of theirs. An idle
// CPU goes to whoever asks, whatever the weight.
const (
	// CPUWeightNormal is a sandbox in use, the cgroup default.
	CPUWeightNormal uint64 = 1024
	// CPUWeightBackground is a sandbox booted ahead of demand: while sandboxes in
	// use keep the CPU busy it gets a sixteenth of what one of them gets, so its
	// boot does not slow them, and it still boots on a loaded node.
	CPUWeightBackground uint64 = 64
)

// Capabilities says which optional operations a runtime implements.
type Capabilities struct {
	// Checkpoint is true when Checkpoint and Restore keep memory across a stop.
	Checkpoint bool
}

// Config is the whole description of one sandbox as its runtime needs it.
type Config struct {
	// RootfsPath is the template's root filesystem: an absolute path the runtime never
	// writes to. Each sandbox gets its own copy-on-write layer over it.
	RootfsPath string
	// Dir is the sandbox's private directory on the host (absolute, existing). The
	// runtime keeps its bundle and writable layer there; the engine removes it.
	Dir string
	// Args is the first process, usually the daemon; Env its environment (KEY=VALUE).
	Args []string
	Env  []string
	// Hostname inside the sandbox.
	Hostname string
	// NetNSPath is the network namespace to run in; empty means no network at all.
	NetNSPath string
	// CPUCount is the CPU quota in whole CPUs (>= 1).
	CPUCount int
	// CPUWeight is the sandbox's weight in contended CPU time (cgroup v1
	// cpu.shares units); 0 means CPUWeightNormal. The quota caps how much CPU
	// the sandbox may use; the weight decides who waits when CPUs are short.
	CPUWeight uint64
	// MemoryMB is what the sandbox sees as its total memory and may use (>= 64).
	MemoryMB int
	// DiskSizeMB caps the writable layer: writing past it gets ENOSPC inside (>= 64).
	DiskSizeMB int
	// WritableRoot makes the sandbox write straight into RootfsPath, with no layer
	// and no disk cap. Template builds use it on a private copy of a tree.
	WritableRoot bool
	// FilesImage, when set, is a directory holding the writable layer of an earlier
	// sandbox of the same tree, saved without its memory (see gvisor.Runtime.SaveFiles):
	// Start boots the new sandbox with that layer's files, its deletions included. Only
	// runtimes that save files read it; Restore ignores it.
	FilesImage string
	// PidsLimit caps the number of tasks; 0 means the runtime's default.
	PidsLimit int
	// Mounts are bind mounts from the host: read-only, such as the daemon's binary,
	// or writable, such as volumes.
	Mounts []Mount
	// ConsolePath is a host file receiving the first process's stdout and stderr.
	ConsolePath string
}

// Mount is a bind mount of a host path into the sandbox, read-only unless Writable.
type Mount struct {
	Source      string
	Destination string
	// Writable mounts the path read-write, without set-user-ID programs or device
	// nodes. Each sandbox's writes reach Source at once, so sandboxes mounting the
	// same Source share its files. Runtimes that map the sandbox's ids to other host
	// ids (runc) show and store its files with the sandbox's own ids, so every
	// sandbox sees the same owners.
	Writable bool
}

// Validate reports the first field of c that cannot work.
func (c Config) Validate() error {
	switch {
	case c.RootfsPath == "" || c.RootfsPath[0] != '/':
		return fmt.Errorf("config: rootfs path %q must be absolute", c.RootfsPath)
	case c.Dir == "" || c.Dir[0] != '/':
		return fmt.Errorf("config: sandbox dir %q must be absolute", c.Dir)
	case len(c.Args) == 0:
		return errors.New("config: args must name the first process")
	case c.CPUCount < 1:
		return fmt.Errorf("config: cpu count %d must be >= 1", c.CPUCount)
	case c.MemoryMB < 64:
		return fmt.Errorf("config: memory %d MB must be >= 64", c.MemoryMB)
	case c.DiskSizeMB < 64:
		return fmt.Errorf("config: disk size %d MB must be >= 64", c.DiskSizeMB)
	}
	return nil
}

// Status is a sandbox's state as its runtime sees it.
type Status string

// The statuses a runtime reports.
const (
	StatusRunning Status = "running"
	StatusFrozen  Status = "frozen"
	StatusStopped Status = "stopped"
)

// Info is one sandbox found on the host by List.
type Info struct {
	ID     string
	Status Status
	// Pid is the host pid of the sandbox's outermost process, 0 when stopped.
	Pid int
}

// Stats is one sample of a sandbox's resource use.
type Stats struct {
	Time time.Time
	// CPUNanos is the cumulative CPU time used, in nanoseconds.
	CPUNanos uint64
	// MemoryBytes is the memory charged to the sandbox now; MemoryCacheBytes the part
	// of it that is page cache.
	MemoryBytes      uint64
	MemoryCacheBytes uint64
	// Pids is the number of tasks.
	Pids uint64
	// OOMKills counts processes the host killed in the sandbox for going over its
	// memory; the sandbox itself may live on.
	OOMKills uint64
}

// Exit describes how a sandbox ended.
type Exit struct {
	// Code is the first process's exit status, -1 when unknown.
	Code int
	// OOMKilled is true when the host killed the sandbox for exceeding its memory.
	OOMKilled bool
	// Reason says in words how it ended, e.g. "out of memory".
	Reason string
}

// ErrNotFound is returned for an id the runtime does not hold.
var ErrNotFound = errors.New("sandbox not found")

// UnsupportedError is returned when a runtime cannot do what was asked.
type UnsupportedError struct {
	Class     string
	Operation string
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("runtime %q does not support %s", e.Class, e.Operation)
}

// IsUnsupported reports whether err is, or wraps, an *UnsupportedError.
func IsUnsupported(err error) bool {
	var u *UnsupportedError
	return errors.As(err, &u)
}
