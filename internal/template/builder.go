// Package template builds sandbox templates from Dockerfiles and keeps them.
//
// A build parses the Dockerfile (Parse), then runs it step by step. Every step that
// changes files leaves a complete directory tree in the layer cache,
// <data>/templates/layers/<key>/rootfs, where key hashes the parent's key, the
// instruction after variable expansion and, for COPY and ADD, the copied content; a
// rebuild whose prefix is unchanged reuses those trees. Trees share unchanged files
// with their parent as hard links: a RUN step runs in gVisor on an overlayfs mount
// over the parent's tree, and its upper layer, on a loop-mounted file system of
// RunDiskMB, is then copied into a hard-link copy of the parent, so no file of an
// older tree is ever written.
//
// Every tree is untrusted content: the builder reads and writes build contexts,
// images and layers only through internal/saferoot, whose links resolve inside the
// tree (see fsutil.go for which paths are whose). A RUN step's exit status comes
// from the runtime, not from a file of the step. Archives and images unpack within
// ExtractLimits, and at most MaxBuilds builds run at once (ErrBusy past the queue).
//
// A finished build is an immutable version, <data>/templates/versions/<name>/<build
// id>/, holding its own tree (rootfs/), its metadata (template.json: default user,
// working directory, environment, start command) and, when the template has a start
// command, a snapshot of a sandbox with that command running (snapshot/). The store's
// template record points at the newest version; older versions stay until GC finds
// no sandbox using them.
//
// Every build has a record and a log under <data>/templates/builds/<build id>/, so an
// HTTP layer can report status and logs while it runs.
package template

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"lelantos.dev/lelantos/internal/engine"
	"lelantos.dev/lelantos/internal/network"
	"lelantos.dev/lelantos/internal/runtime"
	"lelantos.dev/lelantos/internal/saferoot"
	"lelantos.dev/lelantos/internal/store"
)

// Errors callers branch on.
var (
	// ErrInvalid: the request or the Dockerfile cannot be built (bad name, bad syntax,
	// an unsupported instruction, a missing file in the context, a registry image).
	ErrInvalid = errors.New("invalid template build")
	// ErrNotFound: no such template or build.
	ErrNotFound = errors.New("not found")
	// ErrInUse: the template cannot be deleted while sandboxes use it.
	ErrInUse = errors.New("template is in use")
	// ErrStepFailed: a build step ran and failed, e.g. a RUN exited non-zero.
	ErrStepFailed = errors.New("build step failed")
	// ErrRegistry: FROM named a registry image; registries are not reachable here.
	ErrRegistry = errors.New("registry pulls are not reachable from this host")
	// ErrBusy: the node runs MaxBuilds builds and MaxQueuedBuilds more wait; try
	// again later. The HTTP layer answers it with 429 Too Many Requests, as E2B
	// does for too many concurrent builds.
	ErrBusy = errors.New("too many template builds on this node")
)

// EnvdVersion is the daemon protocol version recorded for every built template.
const EnvdVersion = "0.6.4"

// Store is what the builder needs of the control plane's store.
type Store interface {
	GetTemplate(ctx context.Context, idOrAlias string) (*store.Template, error)
	PutTemplate(ctx context.Context, t *store.Template) error
	ListTemplates(ctx context.Context) ([]*store.Template, error)
	DeleteTemplate(ctx context.Context, id string) error
}

// Engine is what the builder needs of the node's engine, to snapshot start commands.
type Engine interface {
	Create(ctx context.Context, s engine.Spec) (engine.Status, error)
	Snapshot(ctx context.Context, id, dir string) error
	Kill(ctx context.Context, id string) error
}

// Network is what the builder needs of the node's network manager, for RUN steps.
type Network interface {
	Setup(ctx context.Context, sandboxID string, opts network.Options) (*network.Endpoint, error)
	Teardown(ctx context.Context, sandboxID string) error
}

// BuilderOptions configures a Builder.
type BuilderOptions struct {
	// DataDir is the node's data directory; the builder keeps everything under
	// DataDir/templates. It should be on the same file system as the base tree so
	// that trees can share files as hard links (else they are copied).
	DataDir string
	Store   Store
	// Engine creates the sandboxes whose start command is snapshotted.
	Engine Engine
	// Runtime runs RUN steps; it must be able to write into its root
	// (runtime.Config.WritableRoot), as the gVisor runtime can. Use the engine's
	// runtime: the engine removes stray build sandboxes when the node restarts.
	Runtime runtime.Runtime
	// Network gives RUN steps a network namespace with internet access.
	Network Network
	// BaseRootfs returns the tree of the `base` template, for FROM base.
	BaseRootfs func() (string, error)
	Logger     *slog.Logger
	// RunCPUCount and RunMemoryMB size the sandbox of each RUN step; defaults 2 and
	// 2048.
	RunCPUCount, RunMemoryMB int
	// RunTimeout bounds one RUN step; default 30 minutes.
	RunTimeout time.Duration
	// RunDiskMB is what one RUN step may write: its changes go to a file system of
	// that size (a sparse file on the data directory's disk, loop-mounted), so the
	// command gets ENOSPC past it and the step fails. Default 10240 (10 GiB).
	RunDiskMB int
	// ExtractLimits bound what ADD unpacks of one archive and FROM of one image (all
	// its layers together): bytes, entries, compression ratio. Zero fields take
	// saferoot's defaults (10 GiB, 2^20 entries, 100 to 1).
	ExtractLimits saferoot.Limits
	// MaxBuilds is how many builds run at once on the node; default 2. Up to
	// MaxQueuedBuilds more wait for a turn (default 8; negative means none); beyond
	// that Build and Start fail with ErrBusy at once.
	MaxBuilds, MaxQueuedBuilds int
	// Nameservers are written into RUN steps' /etc/resolv.conf; nil means the host's.
	Nameservers []string
	// ExtraHosts are host names resolved on the host before each RUN step and given
	// to it in /etc/hosts, for hosts whose resolver sandboxes cannot reach (it is
	// often on a private address, which sandboxes may never reach). nil means the
	// host names of the step's APT sources (/etc/apt/sources.list*), so apt-get works.
	ExtraHosts []string
	// ImageDirs are host directories from which FROM may read OCI image layouts and
	// archives by absolute path. Relative paths are always read from the build
	// context; absolute paths elsewhere are refused, since build requests come from
	// API users who must not read the host's files.
	ImageDirs []string
	// ReadyTimeout bounds the wait for a start command's ready command; default 2
	// minutes.
	ReadyTimeout time.Duration
}

// DefaultReadyWait is how long a start command runs before the snapshot when the
// build gives no ready command.
const DefaultReadyWait = 3 * time.Second

// Result is a finished build.
type Result struct {
	BuildID  string
	Template *store.Template
	Metadata *Metadata
	// Steps counts the instructions; CacheHits the file-changing steps reused from
	// the cache; Ran the file-changing steps executed.
	Steps, CacheHits, Ran int
	Duration              time.Duration
}

// Builder builds and keeps templates. It is safe for concurrent use; builds and
// deletes of one template are serialized.
type Builder struct {
	opts BuilderOptions
	dir  string // DataDir/templates

	mu    sync.Mutex
	names map[string]chan struct{} // one-slot lock per template name
	slots *slots                   // builds running and waiting on the node
	// layers is held shared by builds and exclusively by PruneLayers.
	layers sync.RWMutex

	bgCtx  context.Context
	cancel context.CancelFunc
	bg     sync.WaitGroup
}

// NewBuilder makes a Builder, creating its directories and cleaning up after builds
// a previous process left unfinished.
func NewBuilder(opts BuilderOptions) (*Builder, error) {
	switch {
	case opts.DataDir == "" || !filepath.IsAbs(opts.DataDir):
		return nil, fmt.Errorf("new template builder: data dir %q must be an absolute path", opts.DataDir)
	case opts.Store == nil:
		return nil, errors.New("new template builder: a store is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.RunCPUCount == 0 {
		opts.RunCPUCount = 2
	}
	if opts.RunMemoryMB == 0 {
		opts.RunMemoryMB = 2048
	}
	if opts.RunTimeout == 0 {
		opts.RunTimeout = 30 * time.Minute
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 2 * time.Minute
	}
	if opts.RunDiskMB == 0 {
		opts.RunDiskMB = 10 << 10
	}
	if opts.RunDiskMB < 64 {
		return nil, fmt.Errorf("new template builder: RunDiskMB %d must be at least 64", opts.RunDiskMB)
	}
	if opts.MaxBuilds == 0 {
		opts.MaxBuilds = 2
	}
	if opts.MaxQueuedBuilds == 0 {
		opts.MaxQueuedBuilds = 8
	}
	b := &Builder{opts: opts, dir: filepath.Join(opts.DataDir, "templates"), names: map[string]chan struct{}{},
		slots: newSlots(opts.MaxBuilds, max(opts.MaxQueuedBuilds, 0))}
	for _, d := range []string{layersDir, buildsDir, versionsDir, tmpDir} {
		if err := os.MkdirAll(filepath.Join(b.dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("new template builder: %w", err)
		}
	}
	if err := b.recover(); err != nil {
		return nil, fmt.Errorf("new template builder: %w", err)
	}
	b.bgCtx, b.cancel = context.WithCancel(context.Background())
	return b, nil
}

// Subdirectories of DataDir/templates.
const (
	layersDir   = "layers"
	buildsDir   = "builds"
	versionsDir = "versions"
	tmpDir      = "tmp"
)

// Close cancels builds started with Start and waits for them to end.
func (b *Builder) Close() error {
	b.cancel()
	b.bg.Wait()
	return nil
}

// Start begins a build in the background and returns its id at once; follow it with
// BuildStatus and BuildLogs. The build outlives the caller's request; it ends early
// only when the Builder is closed.
func (b *Builder) Start(req BuildRequest) (string, error) {
	if err := b.checkRequest(&req); err != nil {
		return "", err
	}
	if req.BuildID == "" {
		req.BuildID = newBuildID()
	}
	t, err := b.slots.take()
	if err != nil {
		return "", fmt.Errorf("build template %s: %w", req.Name, err)
	}
	rec, err := b.createBuild(req.BuildID, req.Name)
	if err != nil {
		t.release()
		return "", err
	}
	b.bg.Add(1)
	go func() {
		defer b.bg.Done()
		defer t.release()
		_, _ = b.runBuild(b.bgCtx, rec, req, t, io.Discard)
	}()
	return req.BuildID, nil
}

// Build builds a template and registers it as the template's newest version. log
// receives the build's progress and the output of RUN steps as they are produced;
// the same lines are kept in the build's log (BuildLogs). On failure nothing of the
// build remains but its record and log: no version, and no cached layer for the step
// that failed.
func (b *Builder) Build(ctx context.Context, req BuildRequest, log io.Writer) (*Result, error) {
	if err := b.checkRequest(&req); err != nil {
		return nil, err
	}
	if req.BuildID == "" {
		req.BuildID = newBuildID()
	}
	t, err := b.slots.take()
	if err != nil {
		return nil, fmt.Errorf("build template %s: %w", req.Name, err)
	}
	defer t.release()
	rec, err := b.createBuild(req.BuildID, req.Name)
	if err != nil {
		return nil, err
	}
	return b.runBuild(ctx, rec, req, t, log)
}

// runBuild runs a build whose record exists, once its ticket's turn comes, and
// finishes the record.
func (b *Builder) runBuild(ctx context.Context, rec *buildRecord, req BuildRequest, t *ticket, w io.Writer) (*Result, error) {
	log := rec.logger(w)
	defer log.close()
	if err := t.wait(ctx, func() {
		log.infof("waiting for a turn: %d builds run at once on this node", b.opts.MaxBuilds)
	}); err != nil {
		err = fmt.Errorf("build template %s: %w", req.Name, err)
		rec.finish(log, nil, err)
		return nil, err
	}
	unlock, err := b.lockName(ctx, req.Name)
	if err != nil {
		err = fmt.Errorf("build template %s: %w", req.Name, err)
		rec.finish(log, nil, err)
		return nil, err
	}
	defer unlock()
	if t, err := b.opts.Store.GetTemplate(ctx, req.Name); err == nil && t.ID != req.Name {
		err = fmt.Errorf("build template %s: %w: the name is an alias of template %s", req.Name, ErrInvalid, t.ID)
		rec.finish(log, nil, err)
		return nil, err
	}
	b.layers.RLock()
	defer b.layers.RUnlock()
	start := time.Now()
	res, err := b.build(ctx, req, log)
	if err != nil {
		err = fmt.Errorf("build template %s: %w", req.Name, err)
		rec.finish(log, nil, err)
		return nil, err
	}
	res.Duration = time.Since(start)
	log.infof("template %s built: build %s in %s (%d steps, %d cached, %d run)",
		req.Name, res.BuildID, res.Duration.Round(time.Millisecond), res.Steps, res.CacheHits, res.Ran)
	rec.finish(log, res, nil)
	return res, nil
}
