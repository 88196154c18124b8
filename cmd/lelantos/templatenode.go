package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"lelantos.dev/lelantos/internal/controlplane"
	"lelantos.dev/lelantos/internal/engine"
	"lelantos.dev/lelantos/internal/runtime"
	"lelantos.dev/lelantos/internal/template"
)

// templateGCInterval is how often unused template versions are collected
// besides after every build.
const templateGCInterval = 10 * time.Minute

// templateNode adapts the node's template builder to the control plane
// (controlplane.TemplateSource and TemplateBuilder): it unpacks build
// contexts, translates the builder's errors into the control plane's kinds,
// removes contexts when their build ends and collects template versions no
// sandbox uses any more.
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
}

var (
	_ controlplane.TemplateSource  = (*templateNode)(nil)
	_ controlplane.TemplateBuilder = (*templateNode)(nil)
)

// sandboxLister is the part of the engine the garbage collection asks.
type sandboxLister interface {
	List() []engine.Status
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
	n := &templateNode{builder: b, sandboxes: sbs, contexts: contexts, log: log, cancel: cancel}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		for {
			n.collect(ctx)
			select {
			case <-ctx.Done():
				return
			case <-time.After(templateGCInterval):
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
	case errors.Is(err, template.ErrInvalid):
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
func (n *templateNode) TemplateDetails(ctx context.Context, id string) (controlplane.TemplateDetails, error) {
	m, err := n.builder.Lookup(ctx, id)
	if err != nil {
		return controlplane.TemplateDetails{}, kindError(err, "")
	}
	return controlplane.TemplateDetails{
		Rootfs: m.Rootfs, DefaultUser: m.DefaultUser, DefaultWorkdir: m.DefaultWorkdir,
		Env: m.Env, StartCmd: m.StartCmd, SnapshotImage: m.SnapshotDir,
	}, nil
}

// StartBuild implements controlplane.TemplateBuilder: the Dockerfile is parsed
// first, so that a syntax error is a 400 with its line, and the context is
// unpacked before the build starts. The build gets the control plane's build
// ID and its lookup of FROM templates (the caller's team's and public ones).
func (n *templateNode) StartBuild(ctx context.Context, req controlplane.TemplateBuildRequest) (string, error) {
	if _, err := template.Parse(req.Dockerfile); err != nil {
		return "", kindError(err, "dockerfile: "+err.Error())
	}
	var dir string
	if req.Context != nil {
		var err error
		if dir, err = os.MkdirTemp(n.contexts, req.Name+"-"); err != nil {
			return "", kindError(err, "")
		}
		if err := extractContext(req.Context, dir); err != nil {
			_ = os.RemoveAll(dir)
			return "", &controlplane.Error{Kind: controlplane.ErrInvalidArgument, Message: "context: " + err.Error()}
		}
	}
	id, err := n.builder.Start(template.BuildRequest{
		Name: req.Name, BuildID: req.BuildID, Dockerfile: req.Dockerfile, ContextDir: dir, BuildArgs: req.BuildArgs,
		CPUCount: req.CPUCount, MemoryMB: req.MemoryMB, DiskSizeMB: req.DiskSizeMB,
		StartCmd: req.StartCmd, ReadyCmd: req.ReadyCmd, FromTemplate: req.FromTemplate,
	})
	if err != nil {
		_ = os.RemoveAll(dir)
		return "", kindError(err, "")
	}
	n.wg.Add(1)
	go n.afterBuild(id, dir)
	return id, nil
}

// afterBuild waits for build id to end, then removes its context and
// collects the versions it may have superseded.
func (n *templateNode) afterBuild(id, dir string) {
	defer n.wg.Done()
	for {
		rec, err := n.builder.BuildStatus(id)
		if err != nil || rec.Status != template.BuildBuilding {
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

// collect removes template versions that are neither current nor used by a
// sandbox on this node.
func (n *templateNode) collect(ctx context.Context) {
	n.gcMu.Lock()
	defer n.gcMu.Unlock()
	removed, err := n.builder.GC(ctx, n.treeInUse)
	for _, v := range removed {
		n.log.Info("removed unused template version", "dir", v)
	}
	if err != nil && ctx.Err() == nil {
		n.log.Warn("collect template versions", "err", err)
	}
}

// treeInUse reports whether a sandbox on the node that is not dead runs from
// the tree at rootfs (paused ones included: they resume on it).
func (n *templateNode) treeInUse(rootfs string) (bool, error) {
	for _, st := range n.sandboxes.List() {
		if st.State != engine.StateDead && filepath.Clean(st.Spec.RootfsPath) == filepath.Clean(rootfs) {
			return true, nil
		}
	}
	return false, nil
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
		out = append(out, controlplane.TemplateLogEntry{Timestamp: e.Time, Level: e.Level, Message: e.Message})
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

// Delete implements controlplane.TemplateBuilder. It waits for a collection
// to end: the builder's GC holds each template's lock in turn, which Delete
// would take for a running build.
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
	return nil
}

// toBuild converts a build record.
func toBuild(r *template.BuildRecord) *controlplane.TemplateBuild {
	return &controlplane.TemplateBuild{
		BuildID: r.BuildID, TemplateID: r.TemplateID, Status: string(r.Status), Reason: r.Reason,
		StartedAt: r.StartedAt, FinishedAt: r.FinishedAt,
	}
}

// startTemplates makes the node's template builder: RUN steps run in gVisor (g)
// on the node's network (nm), start commands are snapshotted by the engine, and
// everything lives under <node dir>/templates, next to the sandboxes.
func startTemplates(cfg nodeConfig, nodeDir string, eng *engine.Engine, g runtime.Runtime, nm template.Network) (*templateNode, error) {
	builder, err := template.NewBuilder(template.BuilderOptions{
		DataDir: nodeDir, Store: cfg.Store, Engine: eng, Runtime: g, Network: nm, Logger: cfg.Logger,
		BaseRootfs: func() (string, error) { return cfg.BaseRootfs, nil },
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
