// Package engine owns one node's sandboxes: for each it combines a runtime, a network
// namespace, a directory and the in-sandbox daemon, keeps a record on disk, and
// re-adopts what it finds there when the node restarts.
//
// The engine is what the node agent serves over RPC; nothing above it touches
// runtimes, namespaces or sandbox files.
package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"lelantos.dev/lelantos/internal/network"
	"lelantos.dev/lelantos/internal/runtime"
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
	// ReadyTimeout bounds the wait for a new or resumed sandbox's daemon; default 30s.
	ReadyTimeout time.Duration
	// Warm lists the pools of pre-booted sandboxes to keep; none by default.
	Warm []WarmPool
	// WarmRetry is the first delay before a failed warm-pool boot is tried again; it
	// doubles with each further failure in a row, up to two minutes. Default 1s.
	WarmRetry time.Duration
	// LogInterval is how often console output is moved into the log; default 500ms.
	LogInterval time.Duration
	Logger      *slog.Logger
}

// Engine runs one node's sandboxes. It is safe for concurrent use; operations on one
// sandbox are serialized.
type Engine struct {
	opts    Options
	envd    *envdClient
	envdDir string // current daemon binary's directory

	mu    sync.Mutex
	boxes map[string]*box
	// warm holds the pooled sandboxes by pool key; filled is non-nil, and closed when
	// done, while a goroutine tops the pools up, until poolCtx ends.
	warm       map[string][]*box
	filled     chan struct{}
	poolCtx    context.Context
	poolCancel context.CancelFunc
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
	if _, ok := opts.Runtimes[opts.DefaultClass]; !ok {
		return nil, fmt.Errorf("new engine: default runtime class %q is not configured", opts.DefaultClass)
	}
	for _, d := range []string{"sandboxes", "envd"} {
		if err := os.MkdirAll(filepath.Join(opts.DataDir, d), 0o700); err != nil {
			return nil, fmt.Errorf("new engine: %w", err)
		}
	}
	e := &Engine{opts: opts, envd: newEnvdClient(), boxes: map[string]*box{}, warm: map[string][]*box{}}
	dir, err := installEnvd(opts.DataDir, opts.EnvdPath)
	if err != nil {
		return nil, fmt.Errorf("new engine: %w", err)
	}
	e.envdDir = dir
	if err := e.adopt(ctx); err != nil {
		return nil, fmt.Errorf("new engine: %w", err)
	}
	e.poolCtx, e.poolCancel = context.WithCancel(context.Background())
	e.refill()
	return e, nil
}

// installEnvd copies the daemon binary into DataDir/envd/<hash>/envd once and returns
// that directory: sandboxes keep the binary they started with across pauses and
// upgrades, and a checkpoint always finds the file it was taken with.
func installEnvd(dataDir, src string) (string, error) {
	f, err := os.Open(src)
	if err != nil {
		return "", fmt.Errorf("install envd: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("install envd: %w", err)
	}
	dir := filepath.Join(dataDir, "envd", hex.EncodeToString(h.Sum(nil))[:16])
	if _, err := os.Stat(filepath.Join(dir, "envd")); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("install envd: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", fmt.Errorf("install envd: %w", err)
	}
	tmp := filepath.Join(dir, ".envd.tmp")
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return "", fmt.Errorf("install envd: %w", err)
	}
	_, cerr := io.Copy(out, f)
	if err := errors.Join(cerr, out.Close()); err != nil {
		return "", fmt.Errorf("install envd: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "envd")); err != nil {
		return "", fmt.Errorf("install envd: %w", err)
	}
	return dir, nil
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
		MemoryMB:    s.MemoryMB,
		DiskSizeMB:  s.DiskSizeMB,
		Mounts:      []runtime.Mount{{Source: b.rec.EnvdDir, Destination: "/lelantos"}},
		ConsolePath: filepath.Join(b.dir, consoleFile),
	}
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
	if _, err := os.Stat(filepath.Join(s.RootfsPath, "bin")); err != nil {
		return fmt.Errorf("%w: template rootfs %s: %v", ErrInvalid, s.RootfsPath, err)
	}
	return nil
}

// Status is a sandbox as the engine reports it.
type Status struct {
	Spec    Spec
	State   State
	Address string
	Reason  string
}

func statusOf(r *record) Status {
	return Status{Spec: r.Spec, State: r.State, Address: r.Address, Reason: r.Reason}
}

// lookup returns the box of id with its operation lock held.
func (e *Engine) lookup(id string) (*box, error) {
	e.mu.Lock()
	b := e.boxes[id]
	e.mu.Unlock()
	if b == nil {
		return nil, fmt.Errorf("sandbox %s: %w", id, ErrNotFound)
	}
	b.op.Lock()
	e.mu.Lock()
	current := e.boxes[id] == b
	e.mu.Unlock()
	if !current { // killed while we waited
		b.op.Unlock()
		return nil, fmt.Errorf("sandbox %s: %w", id, ErrNotFound)
	}
	return b, nil
}

// Get reports one sandbox.
func (e *Engine) Get(id string) (Status, error) {
	b, err := e.lookup(id)
	if err != nil {
		return Status{}, err
	}
	defer b.op.Unlock()
	return statusOf(b.record()), nil
}

// List reports every sandbox on the node.
func (e *Engine) List() []Status {
	e.mu.Lock()
	boxes := make([]*box, 0, len(e.boxes))
	for _, b := range e.boxes {
		boxes = append(boxes, b)
	}
	e.mu.Unlock()
	out := make([]Status, 0, len(boxes))
	for _, b := range boxes {
		out = append(out, statusOf(b.record()))
	}
	return out
}

// record returns a copy of the box's current record.
func (b *box) record() *record {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := *b.rec
	return &r
}

// save stores r durably, then makes it the box's record. Call with b.op held.
func (b *box) save(r *record) error {
	if err := writeRecord(b.dir, r); err != nil {
		return err
	}
	b.mu.Lock()
	b.rec = r
	b.mu.Unlock()
	return nil
}

// Logs returns the sandbox's log lines at or after start, up to limit.
func (e *Engine) Logs(id string, start time.Time, limit int) ([]LogLine, error) {
	e.mu.Lock()
	b := e.boxes[id]
	e.mu.Unlock()
	if b == nil {
		return nil, fmt.Errorf("logs of sandbox %s: %w", id, ErrNotFound)
	}
	return b.log.read(start, limit)
}

// addrOf parses an endpoint's address for the record.
func addrOf(a netip.Addr) string { return a.String() }
