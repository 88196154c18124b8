package controlplane

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"regexp"
	"slices"
	"strings"

	"github.com/google/uuid"

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

// visibleTemplate reads the template name means to team teamID: its own
// (by name, alias or ID) or a public one.
func (s *Service) visibleTemplate(ctx context.Context, teamID, name string) (*store.Template, error) {
	t, err := s.store.FindTemplate(ctx, teamID, name)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
		return nil, templateNotFound(name)
	}
	if err != nil {
		return nil, internal("read template "+name, err)
	}
	return t, nil
}

// ListTemplates returns the templates team teamID sees, its own and the
// public ones, with their builds, ordered by ID.
func (s *Service) ListTemplates(ctx context.Context, teamID string) ([]*TemplateInfo, error) {
	if err := needTeam(teamID); err != nil {
		return nil, err
	}
	ts, err := s.store.ListTeamTemplates(ctx, teamID)
	if err != nil {
		return nil, internal("list templates", err)
	}
	out := make([]*TemplateInfo, 0, len(ts))
	for _, t := range ts {
		info, err := s.templateInfo(ctx, teamID, t)
		if err != nil {
			return nil, err
		}
		out = append(out, info)
	}
	return out, nil
}

// GetTemplate returns one template team teamID sees (by ID, name or alias)
// with its builds.
func (s *Service) GetTemplate(ctx context.Context, teamID, name string) (*TemplateInfo, error) {
	t, err := s.visibleTemplate(ctx, teamID, name)
	if err != nil {
		return nil, err
	}
	return s.templateInfo(ctx, teamID, t)
}

// templateInfo fills in t's defaults and gathers its builds. A template the
// builder does not know (base) has its current build made from the record,
// and so has another team's (public) template: its builds are its team's.
func (s *Service) templateInfo(ctx context.Context, teamID string, t *store.Template) (*TemplateInfo, error) {
	t.CPUCount = firstPositive(t.CPUCount, s.cfg.DefaultCPU)
	t.MemoryMB = firstPositive(t.MemoryMB, s.cfg.DefaultMemoryMB)
	t.DiskSizeMB = firstPositive(t.DiskSizeMB, s.cfg.DefaultDiskSizeMB)
	if t.EnvdVersion == "" {
		t.EnvdVersion = DefaultEnvdVersion
	}
	var builds []*TemplateBuild
	if s.cfg.Builder != nil && t.TeamID == teamID {
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

// DeleteTemplate removes a template of team teamID (by ID, name or alias)
// and its files. The default template cannot be deleted, nor one that
// sandboxes (running or paused) were made from or that is being built:
// ErrConflict. Another team's template is not found, even a public one.
func (s *Service) DeleteTemplate(ctx context.Context, teamID, name string) error {
	// A snapshot (by ID or name, any tag) goes with all its builds.
	if handled, err := s.deleteIfSnapshot(ctx, teamID, name); handled {
		return err
	}
	t, err := s.visibleTemplate(ctx, teamID, name)
	if err != nil {
		return err
	}
	if t.ID == DefaultTemplate {
		return newError(ErrConflict, "template %q is the default template and cannot be deleted", t.ID)
	}
	if t.TeamID != teamID {
		return templateNotFound(name)
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

// templateIDFor is the ID of team teamID's template name. In the default
// team it is the name itself, as before teams existed; in other teams the
// name (cut to 46 characters) and a digest of the team and the name, so that
// two teams' templates of one name never share an ID (nor the builder's
// directories, which are keyed by it).
func templateIDFor(teamID, name string) string {
	if teamID == store.DefaultTeamID {
		return name
	}
	sum := sha256.Sum256([]byte(teamID + "/" + name))
	return name[:min(len(name), 46)] + "-" + hex.EncodeToString(sum[:8])
}

// BuildTemplate checks a build request of team teamID and starts the build;
// it runs in the background (follow it with TemplateBuildStatus). It
// returns the template's ID and the build's. The request's fields are
// checked here, the Dockerfile and the context by the builder. Building a
// name the team has makes a new version of that template; another team's
// template of the same name is never touched. A build over the team's
// max-builds quota is ErrQuota.
func (s *Service) BuildTemplate(ctx context.Context, teamID string, req TemplateBuildRequest) (templateID, buildID string, err error) {
	if err := validateBuild(req); err != nil {
		return "", "", err
	}
	templateID, _, err = s.buildTarget(ctx, teamID, req.Name)
	if err != nil {
		return "", "", err
	}
	if s.cfg.Builder == nil {
		return "", "", errNoBuilder()
	}
	s.syncBuilds(ctx, teamID) // builds that ended free their slots first
	buildID = uuid.NewString()
	// The sweep of running builds must not see the record before the
	// builder knows the build.
	unlock, err := s.lock(ctx, buildLockKey(buildID))
	if err != nil {
		return "", "", err
	}
	defer unlock()
	rec := &store.TemplateBuild{ID: buildID, TeamID: teamID, TemplateID: templateID, Name: req.Name}
	if err := s.store.InsertTemplateBuild(ctx, rec, s.cfg.TeamQuotas); err != nil {
		return "", "", storeError("record template build", err)
	}
	breq := req
	breq.Name, breq.BuildID = templateID, buildID
	breq.FromTemplate = func(ctx context.Context, ref string) (*store.Template, error) {
		return s.store.FindTemplate(ctx, teamID, ref)
	}
	if _, err := s.cfg.Builder.StartBuild(ctx, breq); err != nil {
		if derr := s.store.DeleteTemplateBuild(context.WithoutCancel(ctx), buildID); derr != nil {
			s.log.Warn("drop the record of a refused build", "build", buildID, "err", derr)
		}
		return "", "", err
	}
	s.log.Info("template build started", "template", templateID, "team", teamID, "build", buildID)
	return templateID, buildID, nil
}

// buildTarget is the template a build of name by team teamID makes a
// version of: the team's template of that name, else a new one (whose ID
// is templateIDFor). public tells whether it exists and is public.
func (s *Service) buildTarget(ctx context.Context, teamID, name string) (templateID string, public bool, err error) {
	templateID = templateIDFor(teamID, name)
	switch t, err := s.store.FindTemplate(ctx, teamID, name); {
	case err == nil && t.TeamID == teamID && t.Name != name:
		return "", false, invalidf("name: %q is an alias of template %q", name, t.Name)
	case err == nil && t.TeamID == teamID:
		templateID, public = t.ID, t.Public
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return "", false, internal("read template "+name, err)
	}
	if other, err := s.store.GetTemplate(ctx, templateID); err == nil && other.TeamID != teamID {
		// Only a default-team name can equal another team's ID.
		return "", false, newError(ErrConflict, "name: %q is taken, choose another", name)
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return "", false, internal("read template "+templateID, err)
	}
	return templateID, public, nil
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

// byStartedDesc orders builds newest first.
func byStartedDesc(a, b *TemplateBuild) int { return b.StartedAt.Compare(a.StartedAt) }
