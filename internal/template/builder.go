// Package template builds sandbox templates from Dockerfiles, or from E2B's
// step form (Spec) as the e2b SDK sends it, and keeps them.
//
// A build parses the Dockerfile with BuildKit's parser (Parse), then runs its
// stages step by step: the last stage is the template, and the stages it
// copies from or starts from are built first. FROM takes an earlier stage,
// scratch, base, a template, an image on disk or an image in a registry
// (pulled host-side, each layer cached under the chain of the layers'
// digests, so images that share layers share their trees). Every step that
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
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
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
	// ErrRegistry: an image could not be pulled from its registry (it does not
	// exist, the credentials were refused, the registry is unreachable or on
	// an address pulls may not reach).
	ErrRegistry = errors.New("image pull failed")
	// ErrBusy: the node runs MaxBuilds builds and MaxQueuedBuilds more wait; try
	// again later. The HTTP layer answers it with 429 Too Many Requests, as E2B
	// does for too many concurrent builds.
	ErrBusy = errors.New("too many template builds on this node")
)

// EnvdVersion is the daemon protocol version recorded for every built template.
const EnvdVersion = "0.6.4"

// Builder builds and keeps templates. It is safe for concurrent use; builds and
// deletes of one template are serialized.
type Builder struct {
	opts BuilderOptions
	dir  string // DataDir/templates

	mu    sync.Mutex
	names map[string]chan struct{} // one-slot lock per template name
	// tagsMu serializes changes of tags with the collections that read them.
	tagsMu sync.Mutex
	// leases are the version trees handed out for new sandboxes (Lookup),
	// by tree, with when: GC keeps them a while, since the sandbox that
	// will run on one may not be on the node yet.
	leases map[string]time.Time
	slots  *slots // builds running and waiting on the node
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
	if opts.CacheMaxBytes == 0 {
		opts.CacheMaxBytes = DefaultCacheMaxBytes
	}
	if opts.LeaseTime <= 0 {
		opts.LeaseTime = DefaultLeaseTime
	}
	if opts.MaxUploadBytes <= 0 {
		opts.MaxUploadBytes = 512 << 20
	}
	b := &Builder{opts: opts, dir: filepath.Join(opts.DataDir, "templates"), names: map[string]chan struct{}{},
		leases: map[string]time.Time{}, slots: newSlots(opts.MaxBuilds, max(opts.MaxQueuedBuilds, 0))}
	for _, d := range []string{layersDir, buildsDir, versionsDir, tmpDir, filesDir} {
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
	filesDir    = "files"
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
//
// A build reserved with Reserve is started by giving its id: the sizes and
// tags reserved fill the request's zero fields.
func (b *Builder) Start(req BuildRequest) (string, error) {
	reserved := false
	if req.BuildID != "" {
		if rec, err := b.BuildStatus(req.BuildID); err == nil && rec.Status == BuildWaiting {
			reserved = true
			req.CPUCount = cmp.Or(req.CPUCount, rec.CPUCount)
			req.MemoryMB = cmp.Or(req.MemoryMB, rec.MemoryMB)
			req.DiskSizeMB = cmp.Or(req.DiskSizeMB, rec.DiskSizeMB)
			if req.Tags == nil {
				req.Tags = rec.Tags
			}
		}
	}
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
	var rec *buildRecord
	if reserved {
		rec, err = b.startReserved(req.BuildID, req.Name)
	} else {
		rec, err = b.createBuild(req.BuildID, req.Name, BuildBuilding)
	}
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
	rec, err := b.createBuild(req.BuildID, req.Name, BuildBuilding)
	if err != nil {
		return nil, err
	}
	return b.runBuild(ctx, rec, req, t, log)
}

// runTurn runs a build whose record exists, once its ticket's turn comes, and
// finishes the record.
func (b *Builder) runTurn(ctx context.Context, rec *buildRecord, req BuildRequest, t *ticket, w io.Writer) (*Result, error) {
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
