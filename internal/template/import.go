package template

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// TreeConfig is what a finished tree carries besides its files: the image
// configuration its build ended with (the Dockerfile's last ENV, USER,
// WORKDIR, CMD and the like). Kept beside a tree outside the builder, it lets
// Import make a version of that tree without running the build again.
type TreeConfig struct {
	// Env is KEY=VALUE, in order.
	Env []string `json:"env,omitempty"`
	// User is the default user, by name when the tree knows it; Workdir the
	// working directory.
	User         string            `json:"user,omitempty"`
	Workdir      string            `json:"workdir,omitempty"`
	Cmd          []string          `json:"cmd,omitempty"`
	Entrypoint   []string          `json:"entrypoint,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	ExposedPorts []string          `json:"exposedPorts,omitempty"`
	Shell        []string          `json:"shell,omitempty"`
	StopSignal   string            `json:"stopSignal,omitempty"`
	Volumes      []string          `json:"volumes,omitempty"`
	// Healthcheck is Docker's test form: ["CMD", ...], ["CMD-SHELL", cmd] or
	// ["NONE"].
	Healthcheck []string `json:"healthcheck,omitempty"`
}

// TreeConfig returns the image configuration of the version m describes.
func (m *Metadata) TreeConfig() TreeConfig {
	c := m.config()
	return TreeConfig{Env: c.Env, User: c.User, Workdir: c.Workdir, Cmd: c.Cmd, Entrypoint: c.Entrypoint, Labels: c.Labels,
		ExposedPorts: c.Ports, Shell: c.Shell, StopSignal: c.StopSignal, Volumes: c.Volumes, Healthcheck: c.Healthcheck}
}

func (c TreeConfig) image() imageConfig {
	return imageConfig{Env: c.Env, User: c.User, Workdir: c.Workdir, Cmd: c.Cmd, Entrypoint: c.Entrypoint, Labels: c.Labels,
		Ports: c.ExposedPorts, Shell: c.Shell, StopSignal: c.StopSignal, Volumes: c.Volumes, Healthcheck: c.Healthcheck}.clone()
}

// ImportRequest asks for a version made from a tree that exists already,
// such as the tree of an earlier build of the same definition kept in a cache
// that several data directories share.
type ImportRequest struct {
	// Name, BuildID, Tags, CPUCount, MemoryMB, DiskSizeMB and ReadyCmd are as
	// in BuildRequest.
	Name    string
	BuildID string
	Tags    []string
	// Tree is the finished tree, an absolute path. The builder only reads it:
	// the version gets its own copy, whose files are hard links to Tree's
	// when both are on one file system. Its content is as untrusted as any
	// layer's.
	Tree string
	// Config is the image configuration the tree's build ended with.
	Config                         TreeConfig
	CPUCount, MemoryMB, DiskSizeMB int
	// StartCmd, when set, is started in a sandbox of the new version, which
	// is then snapshotted, as a build does. Config's CMD and ENTRYPOINT are
	// recorded, never started.
	StartCmd, ReadyCmd string
}

// Import makes a version of the template from an existing tree, with its
// start command's snapshot, and registers it as Build does: it costs the copy
// of the tree (links, on one file system) and the snapshot, not the steps
// that made the tree. The import has a build record and a log like a build.
func (b *Builder) Import(ctx context.Context, req ImportRequest, log io.Writer) (*Result, error) {
	breq := BuildRequest{Name: req.Name, BuildID: req.BuildID, Tags: req.Tags, CPUCount: req.CPUCount, MemoryMB: req.MemoryMB,
		DiskSizeMB: req.DiskSizeMB, StartCmd: req.StartCmd, ReadyCmd: req.ReadyCmd}
	if err := b.checkRequest(&breq); err != nil {
		return nil, err
	}
	if !filepath.IsAbs(req.Tree) {
		return nil, fmt.Errorf("import template %s: %w: tree %q must be an absolute path", req.Name, ErrInvalid, req.Tree)
	}
	if fi, err := os.Stat(req.Tree); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("import template %s: %w: tree %s is not a directory", req.Name, ErrInvalid, req.Tree)
	}
	if breq.BuildID == "" {
		breq.BuildID = newBuildID()
	}
	t, err := b.slots.take()
	if err != nil {
		return nil, fmt.Errorf("import template %s: %w", req.Name, err)
	}
	defer t.release()
	rec, err := b.createBuild(breq.BuildID, req.Name, BuildBuilding)
	if err != nil {
		return nil, err
	}
	lg := rec.logger(log)
	defer lg.close()
	res, err := b.runImport(ctx, t, breq, req, lg)
	if err != nil {
		err = fmt.Errorf("import template %s: %w", req.Name, err)
		rec.finish(lg, nil, err)
		return nil, err
	}
	rec.finish(lg, res, nil)
	return res, nil
}

// runImport commits the version once the ticket's turn comes, under the
// template's lock.
func (b *Builder) runImport(ctx context.Context, t *ticket, breq BuildRequest, req ImportRequest, log *buildLog) (*Result, error) {
	if err := t.wait(ctx, func() {
		log.infof("waiting for a turn: %d builds run at once on this node", b.opts.MaxBuilds)
	}); err != nil {
		return nil, err
	}
	unlock, err := b.lockName(ctx, req.Name)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if st, err := b.opts.Store.GetTemplate(ctx, req.Name); err == nil && st.ID != req.Name {
		return nil, fmt.Errorf("%w: the name is an alias of template %s", ErrInvalid, st.ID)
	}
	start := time.Now()
	log.setStep("finalize")
	log.infof("template %s: importing the tree %s", req.Name, req.Tree)
	st := &buildState{req: breq, rootfs: req.Tree, cfg: req.Config.image(), log: log}
	meta, tpl, err := b.commitVersion(ctx, st)
	if err != nil {
		return nil, &StepError{Step: "finalize", Err: err}
	}
	res := &Result{BuildID: breq.BuildID, Template: tpl, Metadata: meta, Duration: time.Since(start)}
	log.infof("template %s imported: build %s in %s", req.Name, res.BuildID, res.Duration.Round(time.Millisecond))
	return res, nil
}

// CopyTree makes dst, which must not exist, a copy of the tree src: its files
// are hard links to src's when both are on one file system (so nothing may
// ever write into them; the builder only replaces files), else copies. Links
// in the tree are copied as links, never followed. It is how a version's tree
// is kept outside the builder for a later Import.
func CopyTree(ctx context.Context, src, dst string) error {
	if !filepath.IsAbs(src) || !filepath.IsAbs(dst) {
		return fmt.Errorf("copy tree %s to %s: both paths must be absolute", src, dst)
	}
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("copy tree %s to %s: %w", src, dst, os.ErrExist)
	}
	return linkTree(ctx, src, dst)
}
