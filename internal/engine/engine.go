// Package engine owns one node's sandboxes: for each it combines a runtime, a network
// namespace, a directory and the in-sandbox daemon, keeps a record on disk, and
// re-adopts what it finds there when the node restarts.
//
// The engine is what the node agent serves over RPC; nothing above it touches
// runtimes, namespaces or sandbox files.
package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"lelantos.dev/lelantos/internal/network"
	"lelantos.dev/lelantos/internal/runtime"
	"lelantos.dev/lelantos/internal/saferoot"
)

// Errors callers branch on.
var (
	// ErrNotFound: the node holds no such sandbox.
	ErrNotFound = errors.New("sandbox not found")
	// ErrExists: a sandbox with that id is already on the node.
	ErrExists = errors.New("sandbox already exists")
	// ErrInvalid: the spec cannot be built.
	ErrInvalid = errors.New("invalid sandbox spec")
	// ErrState: the sandbox is not in a state that allows the operation.
	ErrState = errors.New("sandbox is in the wrong state")
)

// Network is what the engine needs of the node's network manager.
type Network interface {
	Setup(ctx context.Context, sandboxID string, opts network.Options) (*network.Endpoint, error)
	Reapply(ctx context.Context, sandboxID string) error
	Teardown(ctx context.Context, sandboxID string) error
	Reconcile(ctx context.Context, keep func(sandboxID string) bool) error
	SetOptions(ctx context.Context, sandboxID string, opts network.Options) error
}

// Options configures an Engine.
type Options struct {
	// DataDir holds one directory per sandbox and the daemon binaries.
	DataDir string
	// Runtimes by class; DefaultClass must be one of them.
	Runtimes     map[string]runtime.Runtime
	DefaultClass string
	Network      Network
	// EnvdPath is the daemon binary every new sandbox runs.
	EnvdPath string
	// Volumes gives sandboxes the volumes their specs mount; nil means a spec with
	// volume mounts is refused.
	Volumes Volumes
	// InterpreterPath, when set, is the code interpreter's server binary, put
	// beside the daemon: sandboxes see it as /lelantos/interpreter.
	InterpreterPath string
	// ReadyTimeout bounds the wait for a new or resumed sandbox's daemon; default 30s.
	ReadyTimeout time.Duration
	// Warm lists the pools of pre-booted sandboxes to keep; none by default.
	Warm []WarmPool
	// WarmMax is the operator's ceiling on each pool's size: a pool grows past its
	// configured Size, up to WarmMax, when its recent create rate asks for more,
	// and a template and shape with no configured pool gets one, up to WarmMax,
	// while it is created from. 0 turns that off: pools keep their Size.
	WarmMax int
	// WarmRetry is the first delay before a failed warm-pool boot is tried again; it
	// doubles with each further failure in a row, up to two minutes. Default 1s.
	WarmRetry time.Duration
	// LogInterval is how often console output is moved into the log; default 500ms.
	LogInterval time.Duration
	// LogCap bounds the disk space of each sandbox's logs (console output not yet
	// moved, console lines and lifecycle events, together); the oldest lines go
	// first, and lifecycle events are kept apart so console output never pushes
	// them out. Default DefaultLogCap (16 MiB); at least MinLogCap.
	LogCap int64
	// NodeCPUs and NodeMemoryMB are what the node's sandboxes share before
	// overcommit; by default the host's CPUs, and its total memory less
	// MemoryReserveMB (default DefaultMemoryReserveMB).
	NodeCPUs        int
	NodeMemoryMB    int
	MemoryReserveMB int
	// CPUOvercommit and MemoryOvercommit scale NodeCPUs and NodeMemoryMB into what
	// sandboxes may ask for in all; defaults DefaultCPUOvercommit (4.0) and
	// DefaultMemoryOvercommit (1.0). Create, Resume and Fork of a sandbox that does
	// not fit fail with ErrNodeFull (after removing pooled sandboxes, if that makes
	// room); warm-pool boots wait for room.
	CPUOvercommit    float64
	MemoryOvercommit float64
	Logger           *slog.Logger
	// Observer is told how long the steps of sandbox starts take; nil: nobody.
	Observer Observer
	// TracerProvider traces those steps within traced operations (the agent
	// RPC's); nil: no traces.
	TracerProvider trace.TracerProvider
}

// Engine runs one node's sandboxes. It is safe for concurrent use; operations on one
// sandbox are serialized.
type Engine struct {
	opts    Options
	envd    *envdClient
	envdDir string // current daemon binary's directory

	mu    sync.Mutex
	boxes map[string]*box
	// limit is what sandboxes may commit; used what they do (the sum of the boxes'
	// charges), booting the part of it pooled sandboxes being booted hold; changed
	// is closed, and replaced, whenever a charge is given back or a pooled sandbox
	// is ready.
	limit   Usage
	used    Usage
	booting Usage
	changed chan struct{}
	// watch wakes log pumps when their console grows; nil if it could not start.
	consoles *consoleWatch
	// warm holds the pooled sandboxes by pool key; filled is non-nil, and closed when
	// done, while a goroutine tops the pools up, until poolCtx ends.
	warm       map[string][]*box
	filled     chan struct{}
	poolCtx    context.Context
	poolCancel context.CancelFunc
	// poolWake wakes the running filler; demand is the recent creates by pool
	// key, poolBooting how many sandboxes each pool has booting, poolRetry the
	// backoff of pools whose last boot failed.
	poolWake    chan struct{}
	demand      map[string]*poolDemand
	poolBooting map[string]int
	poolRetry   map[string]backoff
	// settleUntil is when the sandbox a create last took from a pool has had
	// its first moments (see refillSettle).
	settleUntil time.Time
	// snaps orders the removal of snapshots after the starts from them.
	snaps snapshotLocks
	// cpu holds the host's CPU times at the previous Report.
	cpu cpuSampler
}

// box is the engine's in-memory handle on one sandbox.
type box struct {
	op  sync.Mutex // held for the whole of any operation on the sandbox
	dir string
	mu  sync.Mutex // guards rec, which operations replace and List reads
	rec *record
	log *sandboxLog
	// stop ends the goroutines watching the running sandbox.
	stop context.CancelFunc
	// cpu is the last CPU sample, for CPU %.
	cpu runtime.Stats
	// charge is what the sandbox holds of the node's capacity, booting whether it
	// is a pooled sandbox being booted; both guarded by Engine.mu.
	charge  Usage
	booting bool
	// pooled: the sandbox is booted for a warm pool and not handed out yet, so
	// it runs at runtime.CPUWeightBackground. Guarded by op.
	pooled bool
}

var idPattern = regexp.MustCompile(`^[a-z0-9]{1,63}$`)

// New makes an Engine and re-adopts the sandboxes recorded under DataDir.
func New(ctx context.Context, opts Options) (*Engine, error) {
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 30 * time.Second
	}
	if opts.WarmRetry == 0 {
		opts.WarmRetry = time.Second
	}
	if opts.LogInterval == 0 {
		opts.LogInterval = 500 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.LogCap == 0 {
		opts.LogCap = DefaultLogCap
	}
	if opts.LogCap < MinLogCap {
		return nil, fmt.Errorf("new engine: LogCap %d must be at least %d", opts.LogCap, MinLogCap)
	}
	limit, err := capacityLimit(&opts)
	if err != nil {
		return nil, fmt.Errorf("new engine: %w", err)
	}
	if _, ok := opts.Runtimes[opts.DefaultClass]; !ok {
		return nil, fmt.Errorf("new engine: default runtime class %q is not configured", opts.DefaultClass)
	}
	for _, d := range []string{"sandboxes", "envd", snapshotsDir} {
		if err := os.MkdirAll(filepath.Join(opts.DataDir, d), 0o700); err != nil {
			return nil, fmt.Errorf("new engine: %w", err)
		}
	}
	e := &Engine{opts: opts, envd: newEnvdClient(), boxes: map[string]*box{}, warm: map[string][]*box{},
		limit: limit, changed: make(chan struct{}), poolWake: make(chan struct{}, 1),
		demand: map[string]*poolDemand{}, poolBooting: map[string]int{}, poolRetry: map[string]backoff{}}
	e.envd.observe(newSteps(opts.Observer, opts.TracerProvider))
	if e.consoles, err = newConsoleWatch(); err != nil {
		opts.Logger.Warn("cannot watch consoles; log pumps poll them", "err", err)
	}
	dir, err := installEnvd(opts.DataDir, opts.EnvdPath, opts.InterpreterPath)
	if err != nil {
		e.consoles.close()
		return nil, fmt.Errorf("new engine: %w", err)
	}
	e.envdDir = dir
	if err := e.cleanPartial(); err != nil {
		e.consoles.close()
		return nil, fmt.Errorf("new engine: %w", err)
	}
	if err := e.adopt(ctx); err != nil {
		e.Close()
		return nil, fmt.Errorf("new engine: %w", err)
	}
	e.poolCtx, e.poolCancel = context.WithCancel(context.Background())
	e.refill()
	return e, nil
}

// Close stops the engine's background work (log pumps and exit watchers) and leaves
// every sandbox as it is, as a stopping node agent does; a new Engine on the same
// DataDir re-adopts them. Operations in flight finish first. Do not use the Engine
// afterwards.
func (e *Engine) Close() {
	e.mu.Lock()
	if e.poolCancel != nil {
		e.poolCancel()
	}
	filling := e.filled
	e.mu.Unlock()
	if filling != nil {
		// A boot under way ends in a pooled sandbox, recorded, or in one
		// removed: never in one that runs with no record after Close.
		<-filling
	}
	e.mu.Lock()
	boxes := make([]*box, 0, len(e.boxes))
	for _, b := range e.boxes {
		boxes = append(boxes, b)
	}
	e.mu.Unlock()
	for _, b := range boxes {
		b.op.Lock()
		b.unwatch()
		b.op.Unlock()
	}
	e.consoles.close()
}

func (e *Engine) runtimeFor(class string) (runtime.Runtime, error) {
	rt, ok := e.opts.Runtimes[class]
	if !ok {
		return nil, fmt.Errorf("%w: unknown runtime class %q", ErrInvalid, class)
	}
	return rt, nil
}

// config turns a record into the runtime's Config.
func (e *Engine) config(b *box, netnsPath string) runtime.Config {
	s := b.rec.Spec
	return runtime.Config{
		RootfsPath:  s.RootfsPath,
		Dir:         b.dir,
		Args:        []string{"/lelantos/envd"},
		Env:         []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"},
		Hostname:    "lelantos",
		NetNSPath:   netnsPath,
		CPUCount:    s.CPUCount,
		CPUWeight:   cpuWeight(b.pooled),
		MemoryMB:    s.MemoryMB,
		DiskSizeMB:  s.DiskSizeMB,
		Mounts:      append([]runtime.Mount{{Source: b.rec.EnvdDir, Destination: "/lelantos"}}, e.volumeMounts(s)...),
		ConsolePath: filepath.Join(b.dir, consoleFile),
	}
}

// cpuWeight is the CPU weight of a sandbox: pooled sandboxes boot and wait in
// the background, so that a busy CPU goes to the sandboxes in use first.
func cpuWeight(pooled bool) uint64 {
	if pooled {
		return runtime.CPUWeightBackground
	}
	return runtime.CPUWeightNormal
}

func validate(s Spec) error {
	switch {
	case !idPattern.MatchString(s.ID):
		return fmt.Errorf("%w: id %q must be 1-63 lower-case letters and digits", ErrInvalid, s.ID)
	case s.RootfsPath == "" || !filepath.IsAbs(s.RootfsPath):
		return fmt.Errorf("%w: template rootfs %q must be an absolute path", ErrInvalid, s.RootfsPath)
	case s.CPUCount < 1 || s.CPUCount > 64:
		return fmt.Errorf("%w: cpuCount %d must be 1..64", ErrInvalid, s.CPUCount)
	case s.MemoryMB < 128 || s.MemoryMB > 256<<10:
		return fmt.Errorf("%w: memoryMB %d must be 128..262144", ErrInvalid, s.MemoryMB)
	case s.DiskSizeMB < 128 || s.DiskSizeMB > 1<<20:
		return fmt.Errorf("%w: diskSizeMB %d must be 128..1048576", ErrInvalid, s.DiskSizeMB)
	}
	if err := checkVolumeMounts(s.VolumeMounts); err != nil {
		return err
	}
	// The tree is a template's: its /bin may be a link, resolved inside it.
	tree, err := saferoot.Open(s.RootfsPath, saferoot.InRoot)
	if err != nil {
		return fmt.Errorf("%w: template rootfs %s: %v", ErrInvalid, s.RootfsPath, err)
	}
	defer tree.Close()
	if _, err := tree.Stat("bin"); err != nil {
		return fmt.Errorf("%w: template rootfs %s: %v", ErrInvalid, s.RootfsPath, err)
	}
	return nil
}
