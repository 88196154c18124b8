package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"lelantos.dev/lelantos/internal/controlplane"
	"lelantos.dev/lelantos/internal/engine"
	"lelantos.dev/lelantos/internal/runtime"
	"lelantos.dev/lelantos/internal/template"
	"lelantos.dev/lelantos/internal/template/image"
)

// templateGCInterval is how often unused template versions are collected and
// the build cache pruned, besides after every build.
const templateGCInterval = 10 * time.Minute

// templateNode adapts the node's template builder to the control plane
// (controlplane.TemplateSource and TemplateBuilder): it unpacks build
// contexts, translates the builder's errors into the control plane's kinds,
// removes contexts when their build ends, collects template versions no
// sandbox uses any more and keeps the build cache under its cap.
type templateNode struct {
	builder   *template.Builder
	sandboxes sandboxLister
	// contexts holds the unpacked build contexts of running builds.
	contexts string
	log      *slog.Logger

	// gcMu serializes collections, and deletes with them.
	gcMu   sync.Mutex
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// kicks asks the collection loop for a pass now (after an upload, which
	// may take the build cache past its cap between builds).
	kicks chan struct{}
}

var (
	_ controlplane.TemplateSource  = (*templateNode)(nil)
	_ controlplane.TemplateBuilder = (*templateNode)(nil)
)

// sandboxLister is the part of the engine the garbage collection asks
// (*engine.Engine implements it).
type sandboxLister interface {
	// TreesInUse lists, cleaned, the trees the node's sandboxes, pools and
	// snapshots run or start from.
	TreesInUse() ([]string, error)
}

// newTemplateNode wraps b, whose templates' sandboxes run on sbs; contexts is
// a directory of its own, emptied now (no build runs yet).
func newTemplateNode(b *template.Builder, sbs sandboxLister, contexts string, log *slog.Logger) (*templateNode, error) {
	if err := os.RemoveAll(contexts); err != nil {
		return nil, fmt.Errorf("template contexts: %w", err)
	}
	if err := os.MkdirAll(contexts, 0o700); err != nil {
		return nil, fmt.Errorf("template contexts: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &templateNode{builder: b, sandboxes: sbs, contexts: contexts, log: log, cancel: cancel, kicks: make(chan struct{}, 1)}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		for {
			n.collect(ctx)
			select {
			case <-ctx.Done():
				return
			case <-time.After(templateGCInterval):
			case <-n.kicks:
			}
		}
	}()
	return n, nil
}

// Close stops the builds (they end as failed) and waits for the clean-ups.
func (n *templateNode) Close() error {
	n.cancel()
	err := n.builder.Close()
	n.wg.Wait()
	return err
}

// kindError gives a builder error the control plane's kind; message, when
// set, replaces the error's own text (so that it can start with the field).
func kindError(err error, message string) error {
	var kind error
	switch {
	case errors.Is(err, template.ErrNotFound):
		kind = controlplane.ErrNotFound
	case errors.Is(err, template.ErrInUse):
		kind = controlplane.ErrConflict
	case errors.Is(err, template.ErrInvalid), errors.Is(err, template.ErrTooLarge):
		kind = controlplane.ErrInvalidArgument
	case errors.Is(err, template.ErrBusy): // the node's build queue is full: 429
		kind = controlplane.ErrQuota
	}
	if message == "" {
		message = err.Error()
	}
	if kind == nil {
		return &controlplane.Error{Message: "template builder", Cause: err}
	}
	return &controlplane.Error{Kind: kind, Message: message}
}

// TemplateDetails implements controlplane.TemplateSource.
func (n *templateNode) TemplateDetails(ctx context.Context, id, buildID string) (controlplane.TemplateDetails, error) {
	m, err := n.builder.LookupBuild(ctx, id, buildID)
	if err != nil {
		return controlplane.TemplateDetails{}, kindError(err, "")
	}
	return controlplane.TemplateDetails{
		Rootfs: m.Rootfs, DefaultUser: m.DefaultUser, DefaultWorkdir: m.DefaultWorkdir,
		Env: m.Env, StartCmd: m.StartCmd, SnapshotImage: m.SnapshotDir,
	}, nil
}

// StartBuild implements controlplane.TemplateBuilder: a Dockerfile (or the
// step form) is checked first, so that a syntax error is a 400 with its line,
// and the context is unpacked before the build starts. The build gets the
// control plane's build ID and its lookup of FROM templates (the caller's
// team's and public ones).
func (n *templateNode) StartBuild(ctx context.Context, req controlplane.TemplateBuildRequest) (string, error) {
	breq := template.BuildRequest{
		Name: req.Name, BuildID: req.BuildID, Dockerfile: req.Dockerfile, BuildArgs: req.BuildArgs,
		CPUCount: req.CPUCount, MemoryMB: req.MemoryMB, DiskSizeMB: req.DiskSizeMB, Tags: req.Tags,
		StartCmd: req.StartCmd, ReadyCmd: req.ReadyCmd, FromTemplate: req.FromTemplate,
	}
	if req.Spec != nil {
		breq.Spec, breq.FilesScope = specOf(req.Spec), req.TeamID
		if _, err := breq.Spec.Dockerfile(); err != nil {
			return "", kindError(err, "")
		}
	} else if _, err := template.Parse(req.Dockerfile); err != nil {
		return "", kindError(err, "dockerfile: "+err.Error())
	}
	if req.Context != nil {
		dir, err := os.MkdirTemp(n.contexts, req.Name+"-")
		if err != nil {
			return "", kindError(err, "")
		}
		if err := extractContext(req.Context, dir); err != nil {
			_ = os.RemoveAll(dir)
			return "", &controlplane.Error{Kind: controlplane.ErrInvalidArgument, Message: "context: " + err.Error()}
		}
		breq.ContextDir = dir
	}
	id, err := n.builder.Start(breq)
	if err != nil {
		_ = os.RemoveAll(breq.ContextDir)
		return "", kindError(err, "")
	}
	n.wg.Add(1)
	go n.afterBuild(id, breq.ContextDir)
	return id, nil
}

// afterBuild waits for build id to end, then removes its context, collects
// the versions it may have superseded and prunes the build cache.
func (n *templateNode) afterBuild(id, dir string) {
	defer n.wg.Done()
	for {
		rec, err := n.builder.BuildStatus(id)
		if err != nil || (rec.Status != template.BuildBuilding && rec.Status != template.BuildWaiting) {
			break
		}
		time.Sleep(time.Second)
	}
	if dir != "" {
		if err := os.RemoveAll(dir); err != nil {
			n.log.Warn("remove template build context", "build", id, "err", err)
		}
	}
	n.collect(context.Background())
}

// kick asks for a collection soon; kicks while one is pending are one.
func (n *templateNode) kick() {
	select {
	case n.kicks <- struct{}{}:
	default:
	}
}

// collect removes template versions that are neither current, tagged nor
// used by a sandbox on this node, then prunes the build cache to its cap.
func (n *templateNode) collect(ctx context.Context) {
	n.gcMu.Lock()
	defer n.gcMu.Unlock()
	n.collectLocked(ctx)
}

func (n *templateNode) collectLocked(ctx context.Context) {
	var removed []string
	trees, err := n.sandboxes.TreesInUse()
	if err == nil {
		// Read once for the pass: a create handed a version meanwhile
		// holds its lease, which GC honours.
		removed, err = n.builder.GC(ctx, func(rootfs string) (bool, error) {
			return slices.Contains(trees, filepath.Clean(rootfs)), nil
		})
	}
	for _, v := range removed {
		n.log.Info("removed unused template version", "dir", v)
	}
	if err != nil && ctx.Err() == nil {
		n.log.Warn("collect template versions", "err", err)
	}
	st, err := n.builder.PruneCache(ctx)
	if err != nil && ctx.Err() == nil {
		n.log.Warn("prune the template build cache", "err", err)
	}
	if st.Layers+st.Files > 0 {
		n.log.Info("pruned the template build cache", "layers", st.Layers, "files", st.Files, "freed", st.Freed, "was", st.Bytes)
	}
}

// Build implements controlplane.TemplateBuilder.
func (n *templateNode) Build(_ context.Context, id string) (*controlplane.TemplateBuild, error) {
	rec, err := n.builder.BuildStatus(id)
	if err != nil {
		return nil, kindError(err, "")
	}
	return toBuild(rec), nil
}

// BuildLogs implements controlplane.TemplateBuilder.
func (n *templateNode) BuildLogs(_ context.Context, id string, offset, limit int) ([]controlplane.TemplateLogEntry, error) {
	entries, err := n.builder.BuildLogs(id, offset, limit)
	if err != nil {
		return nil, kindError(err, "")
	}
	out := make([]controlplane.TemplateLogEntry, 0, len(entries))
	for _, e := range entries {
		out = append(out, controlplane.TemplateLogEntry{Timestamp: e.Time, Level: e.Level, Message: e.Message, Step: e.Step})
	}
	return out, nil
}

// Builds implements controlplane.TemplateBuilder.
func (n *templateNode) Builds(_ context.Context, templateID string) ([]*controlplane.TemplateBuild, error) {
	recs, err := n.builder.Builds(templateID)
	if err != nil {
		return nil, kindError(err, "")
	}
	out := make([]*controlplane.TemplateBuild, 0, len(recs))
	for _, r := range recs {
		out = append(out, toBuild(r))
	}
	return out, nil
}

// Delete implements controlplane.TemplateBuilder: the template leaves the
// store, then its files go in a collection, which keeps a version a sandbox
// runs on or a create was just handed. It waits for a running collection:
// the builder's GC holds each template's lock in turn, which Delete would
// take for a running build.
func (n *templateNode) Delete(ctx context.Context, templateID string, inUse func(string) (bool, error)) error {
	n.gcMu.Lock()
	defer n.gcMu.Unlock()
	if err := n.builder.Delete(ctx, templateID, inUse); err != nil {
		var cpErr *controlplane.Error
		if errors.As(err, &cpErr) {
			return err // the control plane's own, from inUse
		}
		return kindError(err, "")
	}
	n.collectLocked(context.WithoutCancel(ctx))
	return nil
}

// toBuild converts a build record.
func toBuild(r *template.BuildRecord) *controlplane.TemplateBuild {
	return &controlplane.TemplateBuild{
		BuildID: r.BuildID, TemplateID: r.TemplateID, Status: string(r.Status), Reason: r.Reason, ReasonStep: r.ReasonStep,
		StartedAt: r.StartedAt, FinishedAt: r.FinishedAt,
	}
}

// startTemplates makes the node's template builder: RUN steps run in gVisor (g)
// on the node's network (nm), start commands are snapshotted by the engine, and
// everything lives under <node dir>/templates, next to the sandboxes. Images
// are pulled with the operator's docker credentials ($DOCKER_CONFIG, else
// ~/.docker/config.json), which every team's pulls from those registries use.
func startTemplates(cfg nodeConfig, nodeDir string, eng *engine.Engine, g runtime.Runtime, nm template.Network) (*templateNode, error) {
	cacheMax := cfg.BuildCacheMB << 20
	if cfg.BuildCacheMB < 0 {
		cacheMax = -1
	}
	builder, err := template.NewBuilder(template.BuilderOptions{
		DataDir: nodeDir, Store: cfg.Store, Engine: eng, Runtime: g, Network: nm, Logger: cfg.Logger,
		BaseRootfs:    func() (string, error) { return cfg.BaseRootfs, nil },
		Registries:    image.RemoteOptions{Keychain: authn.DefaultKeychain, PrivateRegistries: cfg.PrivateRegistries},
		CacheMaxBytes: cacheMax, Observer: cfg.BuildObserver,
	})
	if err != nil {
		return nil, err
	}
	n, err := newTemplateNode(builder, eng, filepath.Join(nodeDir, "templates", "contexts"), cfg.Logger)
	if err != nil {
		return nil, errors.Join(err, builder.Close())
	}
	return n, nil
}
