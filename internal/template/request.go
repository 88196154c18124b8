package template

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"

	"lelantos.dev/lelantos/internal/store"
)

// BuildRequest describes one build.
type BuildRequest struct {
	// Name is the template's name: 1-63 of a-z, 0-9, '-', '_', starting with a
	// letter or digit. "base" and "scratch" are reserved.
	Name string
	// BuildID, when set, is the build's id (e.g. issued earlier by the HTTP layer);
	// otherwise a new one is made. It must be unused.
	BuildID string
	// Dockerfile is the Dockerfile's text; Spec, when set instead, is the
	// template in E2B's step form.
	Dockerfile string
	Spec       *Spec
	// FilesScope is whose uploaded files (PutFile) the step form's COPY steps
	// read: the caller's team.
	FilesScope string
	// Tags are the tags the build gets; nil means DefaultTag only. A build
	// without DefaultTag leaves the template's current build as it is,
	// unless the template has none yet.
	Tags []string
	// ContextDir is the build context on the host, for COPY and ADD; may be empty
	// when the Dockerfile copies nothing. A .dockerignore in it is honoured.
	ContextDir string
	// BuildArgs override ARG defaults.
	BuildArgs map[string]string
	// CPUCount, MemoryMB and DiskSizeMB are the template's sandbox defaults;
	// defaults 2, 512 and 1024.
	CPUCount, MemoryMB, DiskSizeMB int
	// StartCmd, when set, is started in a sandbox of the finished tree, which is then
	// snapshotted: sandboxes of the template start with it already running.
	// Empty means the Dockerfile's own ENTRYPOINT and CMD, if it has any (an
	// image's are recorded, not started).
	StartCmd string
	// ReadyCmd tells when the start command is ready: it is run (with bash -l -c)
	// until it exits 0. Empty means the Dockerfile's HEALTHCHECK command, else
	// waiting DefaultReadyWait after the start.
	ReadyCmd string
	// NoCache rebuilds every step instead of reusing cached layers.
	NoCache bool
	// FromTemplate, when set, looks up the template FROM names instead of
	// Store.GetTemplate, so that the caller decides which templates a build
	// may start from; not found wraps store.ErrNotFound.
	FromTemplate func(ctx context.Context, ref string) (*store.Template, error)
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// tagRE is what a tag may be (E2B's form).
var tagRE = regexp.MustCompile(`^[a-z0-9_.-]{1,128}$`)

// checkRequest validates req and fills its defaults.
func (b *Builder) checkRequest(req *BuildRequest) error {
	switch {
	case !nameRE.MatchString(req.Name):
		return fmt.Errorf("build template %q: %w: the name must be 1-63 of a-z, 0-9, '-' and '_'", req.Name, ErrInvalid)
	case req.Name == "base" || req.Name == "scratch":
		return fmt.Errorf("build template %q: %w: the name is reserved", req.Name, ErrInvalid)
	case req.Dockerfile != "" && req.Spec != nil:
		return fmt.Errorf("build template %s: %w: give a Dockerfile or a step form, not both", req.Name, ErrInvalid)
	case req.Spec != nil && req.FilesScope != "" && !scopeRE.MatchString(req.FilesScope):
		return fmt.Errorf("build template %s: %w: files scope %q", req.Name, ErrInvalid, req.FilesScope)
	case req.BuildID != "" && !buildIDRE.MatchString(req.BuildID):
		return fmt.Errorf("build template %s: %w: build id %q is not a UUID", req.Name, ErrInvalid, req.BuildID)
	case req.ContextDir != "" && !filepath.IsAbs(req.ContextDir):
		return fmt.Errorf("build template %s: %w: context dir %q must be absolute", req.Name, ErrInvalid, req.ContextDir)
	}
	if req.CPUCount == 0 {
		req.CPUCount = 2
	}
	if req.MemoryMB == 0 {
		req.MemoryMB = 512
	}
	if req.DiskSizeMB == 0 {
		req.DiskSizeMB = 1024
	}
	switch {
	case req.CPUCount < 1 || req.CPUCount > 64:
		return fmt.Errorf("build template %s: %w: cpuCount %d must be 1..64", req.Name, ErrInvalid, req.CPUCount)
	case req.MemoryMB < 128 || req.MemoryMB > 256<<10:
		return fmt.Errorf("build template %s: %w: memoryMB %d must be 128..262144", req.Name, ErrInvalid, req.MemoryMB)
	case req.DiskSizeMB < 128 || req.DiskSizeMB > 1<<20:
		return fmt.Errorf("build template %s: %w: diskSizeMB %d must be 128..1048576", req.Name, ErrInvalid, req.DiskSizeMB)
	case req.StartCmd == "" && req.ReadyCmd != "":
		return fmt.Errorf("build template %s: %w: a ready command needs a start command", req.Name, ErrInvalid)
	case req.StartCmd != "" && b.opts.Engine == nil:
		return fmt.Errorf("build template %s: %w: start commands need an engine", req.Name, ErrInvalid)
	}
	for _, t := range req.Tags {
		if !tagRE.MatchString(t) {
			return fmt.Errorf("build template %s: %w: tag %q must be 1-128 of a-z, 0-9, '.', '-' and '_'", req.Name, ErrInvalid, t)
		}
	}
	return nil
}

// lockName takes the template's lock, waiting while another build or delete of it
// runs.
func (b *Builder) lockName(ctx context.Context, name string) (func(), error) {
	b.mu.Lock()
	ch := b.names[name]
	if ch == nil {
		ch = make(chan struct{}, 1)
		b.names[name] = ch
	}
	b.mu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
