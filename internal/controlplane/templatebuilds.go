package controlplane

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"strings"

	"lelantos.dev/lelantos/internal/store"
)

// Bounds of a template's sandbox sizes (0 means the builder's default).
const (
	MaxTemplateCPU      = 64
	MinTemplateMemoryMB = 128
	MaxTemplateMemoryMB = 256 << 10
	MinTemplateDiskMB   = 128
	MaxTemplateDiskMB   = 1 << 20
)

// templateNameRE is what a built template may be called.
var templateNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// reservedTemplateNames cannot be built: base is registered by the server,
// scratch is the empty tree FROM may name.
var reservedTemplateNames = []string{DefaultTemplate, "scratch"}

// TemplateInfo is a template with its builds.
type TemplateInfo struct {
	// Template is the stored record, with the default sizes and daemon
	// version filled in where it has none.
	Template *store.Template
	// Builds are newest first; the current build is always among them.
	Builds []*TemplateBuild
}

// BuildStatus is the status of the template's newest build.
func (i *TemplateInfo) BuildStatus() string {
	if len(i.Builds) == 0 {
		return BuildReady
	}
	return i.Builds[0].Status
}

// errNoBuilder answers template operations that need the node's builder on a
// server without one.
func errNoBuilder() error {
	return newError(ErrUnavailable, "template builds are not available on this server")
}

// templateNotFound is the ErrNotFound error for a template name.
func templateNotFound(name string) error {
	return newError(ErrNotFound, "template %q not found", name)
}

// getTemplate reads a template by ID or alias.
func (s *Service) getTemplate(ctx context.Context, name string) (*store.Template, error) {
	t, err := s.store.GetTemplate(ctx, name)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
		return nil, templateNotFound(name)
	}
	if err != nil {
		return nil, internal("read template "+name, err)
	}
	return t, nil
}

// ListTemplates returns every template with its builds, ordered by ID.
func (s *Service) ListTemplates(ctx context.Context) ([]*TemplateInfo, error) {
	ts, err := s.store.ListTemplates(ctx)
	if err != nil {
		return nil, internal("list templates", err)
	}
	out := make([]*TemplateInfo, 0, len(ts))
	for _, t := range ts {
		info, err := s.templateInfo(ctx, t)
		if err != nil {
			return nil, err
		}
		out = append(out, info)
	}
	return out, nil
}

// GetTemplate returns one template (by ID or alias) with its builds.
func (s *Service) GetTemplate(ctx context.Context, name string) (*TemplateInfo, error) {
	t, err := s.getTemplate(ctx, name)
	if err != nil {
		return nil, err
	}
	return s.templateInfo(ctx, t)
}

// templateInfo fills in t's defaults and gathers its builds. A template the
// builder does not know (base) has its current build made from the record.
func (s *Service) templateInfo(ctx context.Context, t *store.Template) (*TemplateInfo, error) {
	t.CPUCount = firstPositive(t.CPUCount, s.cfg.DefaultCPU)
	t.MemoryMB = firstPositive(t.MemoryMB, s.cfg.DefaultMemoryMB)
	t.DiskSizeMB = firstPositive(t.DiskSizeMB, s.cfg.DefaultDiskSizeMB)
	if t.EnvdVersion == "" {
		t.EnvdVersion = DefaultEnvdVersion
	}
	var builds []*TemplateBuild
	if s.cfg.Builder != nil {
		var err error
		if builds, err = s.cfg.Builder.Builds(ctx, t.ID); err != nil {
			return nil, internal("list builds of template "+t.ID, err)
		}
	}
	if !slices.ContainsFunc(builds, func(b *TemplateBuild) bool { return b.BuildID == t.BuildID }) {
		finished := t.UpdatedAt
		builds = append(builds, &TemplateBuild{BuildID: t.BuildID, TemplateID: t.ID, Status: BuildReady,
			StartedAt: t.UpdatedAt, FinishedAt: &finished})
	}
	slices.SortStableFunc(builds, byStartedDesc)
	return &TemplateInfo{Template: t, Builds: builds}, nil
}

// DeleteTemplate removes a template (by ID or alias) and its files. The
// default template cannot be deleted, nor one that sandboxes (running or
// paused) were made from or that is being built: ErrConflict.
func (s *Service) DeleteTemplate(ctx context.Context, name string) error {
	t, err := s.getTemplate(ctx, name)
	if err != nil {
		return err
	}
	if t.ID == DefaultTemplate {
		return newError(ErrConflict, "template %q is the default template and cannot be deleted", t.ID)
	}
	if s.cfg.Builder == nil {
		return errNoBuilder()
	}
	inUse := func(id string) (bool, error) { return s.TemplateInUse(ctx, id) }
	if err := s.cfg.Builder.Delete(ctx, t.ID, inUse); err != nil {
		if errors.Is(err, ErrNotFound) {
			return templateNotFound(name)
		}
		return err
	}
	s.log.Info("template deleted", "template", t.ID)
	return nil
}

// BuildTemplate checks a build request and starts the build; it runs in the
// background (follow it with TemplateBuildStatus). The request's fields are
// checked here, the Dockerfile and the context by the builder.
func (s *Service) BuildTemplate(ctx context.Context, req TemplateBuildRequest) (string, error) {
	if err := validateBuild(req); err != nil {
		return "", err
	}
	if t, err := s.store.GetTemplate(ctx, req.Name); err == nil && t.ID != req.Name {
		return "", invalidf("name: %q is an alias of template %q", req.Name, t.ID)
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return "", internal("read template "+req.Name, err)
	}
	if s.cfg.Builder == nil {
		return "", errNoBuilder()
	}
	id, err := s.cfg.Builder.StartBuild(ctx, req)
	if err != nil {
		return "", err
	}
	s.log.Info("template build started", "template", req.Name, "build", id)
	return id, nil
}

// validateBuild checks the fields of a build request.
func validateBuild(req TemplateBuildRequest) error {
	switch {
	case req.Name == "":
		return invalidf("name: required")
	case !templateNameRE.MatchString(req.Name):
		return invalidf("name: %q must be 1-63 of a-z, 0-9, '-' and '_', starting with a letter or digit", req.Name)
	case slices.Contains(reservedTemplateNames, req.Name):
		return invalidf("name: %q is reserved", req.Name)
	case strings.TrimSpace(req.Dockerfile) == "":
		return invalidf("dockerfile: required")
	case req.CPUCount < 0 || req.CPUCount > MaxTemplateCPU:
		return invalidf("cpuCount: must be 1..%d, got %d", MaxTemplateCPU, req.CPUCount)
	case req.MemoryMB != 0 && (req.MemoryMB < MinTemplateMemoryMB || req.MemoryMB > MaxTemplateMemoryMB):
		return invalidf("memoryMB: must be %d..%d, got %d", MinTemplateMemoryMB, MaxTemplateMemoryMB, req.MemoryMB)
	case req.DiskSizeMB != 0 && (req.DiskSizeMB < MinTemplateDiskMB || req.DiskSizeMB > MaxTemplateDiskMB):
		return invalidf("diskSizeMB: must be %d..%d, got %d", MinTemplateDiskMB, MaxTemplateDiskMB, req.DiskSizeMB)
	case req.ReadyCmd != "" && req.StartCmd == "":
		return invalidf("readyCmd: needs a startCmd")
	case strings.ContainsRune(req.StartCmd, 0):
		return invalidf("startCmd: contains a NUL byte")
	case strings.ContainsRune(req.ReadyCmd, 0):
		return invalidf("readyCmd: contains a NUL byte")
	}
	for k := range req.BuildArgs {
		if k == "" || strings.ContainsAny(k, "= \t\n\x00") {
			return invalidf("buildArgs: invalid argument name %q", k)
		}
	}
	return nil
}

// TemplateBuildStatus reports a build of a template; templateID may be the
// template's alias. A build of another template is ErrNotFound.
func (s *Service) TemplateBuildStatus(ctx context.Context, templateID, buildID string) (*TemplateBuild, error) {
	if s.cfg.Builder == nil {
		return nil, errNoBuilder()
	}
	notFound := newError(ErrNotFound, "build %q of template %q not found", buildID, templateID)
	b, err := s.cfg.Builder.Build(ctx, buildID)
	if errors.Is(err, ErrNotFound) {
		return nil, notFound
	}
	if err != nil {
		return nil, err
	}
	if b.TemplateID != templateID {
		t, err := s.store.GetTemplate(ctx, templateID)
		if err != nil || t.ID != b.TemplateID {
			return nil, notFound
		}
	}
	return b, nil
}

// TemplateBuildLogs returns up to limit entries of a build's log from the
// offset-th on (0-based), as E2B's logsOffset counts them.
func (s *Service) TemplateBuildLogs(ctx context.Context, templateID, buildID string, offset, limit int) ([]TemplateLogEntry, error) {
	if _, err := s.TemplateBuildStatus(ctx, templateID, buildID); err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, invalidf("logsOffset: must not be negative, got %d", offset)
	}
	logs, err := s.cfg.Builder.BuildLogs(ctx, buildID, offset, limit)
	if err != nil {
		return nil, err
	}
	return logs, nil
}

// byStartedDesc orders builds newest first.
func byStartedDesc(a, b *TemplateBuild) int { return b.StartedAt.Compare(a.StartedAt) }
