package controlplane

import (
	"context"
	"errors"
	"io"
	"regexp"
	"slices"
	"strings"

	"github.com/google/uuid"

	"lelantos.dev/lelantos/internal/store"
)

// E2B's build flow, as the e2b SDK's Template.build drives it: a build is
// requested (RequestTemplateBuild: the template's ID and the build's), the
// files of its COPY steps are uploaded unless the server has them
// (TemplateFileUpload, PutTemplateFile), then the build is started with its
// steps (StartTemplateBuild) and followed with TemplateBuildStatus.

// DefaultTag names a template's current build.
const DefaultTag = "default"

// tagRE is what a tag may be (E2B's form).
var tagRE = regexp.MustCompile(`^[a-z0-9_.-]{1,128}$`)

// filesHashRE is an upload's name: E2B's hex SHA-256.
var filesHashRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Defaults of a requested build's sandboxes, as E2B's.
const (
	DefaultBuildCPU      = 2
	DefaultBuildMemoryMB = 1024
)

// BuildReservation is a requested build of E2B's flow.
type BuildReservation struct {
	// Name is the template's name in the team, without namespace or tag.
	Name string
	// Tags are the tags the build gets; none means "default".
	Tags []string
	// CPUCount, MemoryMB and DiskSizeMB size the template's sandboxes; 0
	// takes DefaultBuildCPU, DefaultBuildMemoryMB and the builder's disk.
	CPUCount, MemoryMB, DiskSizeMB int
}

// ReservedBuild answers a requested build.
type ReservedBuild struct {
	TemplateID, BuildID  string
	Public               bool
	Names, Tags, Aliases []string
}

// NormalizeTags checks tags and drops repeats; none means "default".
func NormalizeTags(field string, tags []string) ([]string, error) {
	var out []string
	for _, t := range tags {
		t = strings.ToLower(strings.TrimSpace(t))
		if !tagRE.MatchString(t) {
			return nil, invalidf("%s: tag %q must be 1-128 of a-z, 0-9, '.', '-' and '_'", field, t)
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		out = []string{DefaultTag}
	}
	return out, nil
}

// RequestTemplateBuild records a build of team teamID that starts when
// StartTemplateBuild gives its steps. It counts against the team's
// max-builds quota from now on (ErrQuota past it); one never started fails
// after an hour. A name the team has gets a new build of that template.
func (s *Service) RequestTemplateBuild(ctx context.Context, teamID string, req BuildReservation) (*ReservedBuild, error) {
	if req.CPUCount == 0 {
		req.CPUCount = DefaultBuildCPU
	}
	if req.MemoryMB == 0 {
		req.MemoryMB = DefaultBuildMemoryMB
	}
	if err := validateBuild(TemplateBuildRequest{Name: req.Name, Dockerfile: "-", CPUCount: req.CPUCount, MemoryMB: req.MemoryMB,
		DiskSizeMB: req.DiskSizeMB}); err != nil {
		return nil, err
	}
	tags, err := NormalizeTags("tags", req.Tags)
	if err != nil {
		return nil, err
	}
	templateID, public, err := s.buildTarget(ctx, teamID, req.Name)
	if err != nil {
		return nil, err
	}
	if s.cfg.Builder == nil {
		return nil, errNoBuilder()
	}
	s.syncBuilds(ctx, teamID)
	buildID := uuid.NewString()
	unlock, err := s.lock(ctx, buildLockKey(buildID))
	if err != nil {
		return nil, err
	}
	defer unlock()
	rec := &store.TemplateBuild{ID: buildID, TeamID: teamID, TemplateID: templateID, Name: req.Name}
	if err := s.store.InsertTemplateBuild(ctx, rec, s.cfg.TeamQuotas); err != nil {
		return nil, storeError("record template build", err)
	}
	err = s.cfg.Builder.ReserveBuild(ctx, TemplateBuildRequest{Name: templateID, BuildID: buildID, CPUCount: req.CPUCount,
		MemoryMB: req.MemoryMB, DiskSizeMB: req.DiskSizeMB, Tags: tags})
	if err != nil {
		if derr := s.store.DeleteTemplateBuild(context.WithoutCancel(ctx), buildID); derr != nil {
			s.log.Warn("drop the record of a refused build", "build", buildID, "err", derr)
		}
		return nil, err
	}
	s.log.Info("template build requested", "template", templateID, "team", teamID, "build", buildID)
	return &ReservedBuild{TemplateID: templateID, BuildID: buildID, Public: public, Names: []string{req.Name}, Tags: tags,
		Aliases: []string{req.Name}}, nil
}

// ownedBuild is build buildID of team teamID's template templateID (its
// ID or name); another team's is not found.
func (s *Service) ownedBuild(ctx context.Context, teamID, templateID, buildID string) (*store.TemplateBuild, error) {
	notFound := newError(ErrNotFound, "build %q of template %q not found", buildID, templateID)
	rec, err := s.store.GetTemplateBuild(ctx, buildID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound
	}
	if err != nil {
		return nil, internal("read template build "+buildID, err)
	}
	if rec.TeamID != teamID || (templateID != rec.TemplateID && templateID != rec.Name) {
		return nil, notFound
	}
	return rec, nil
}

// StartTemplateBuild starts a requested build of team teamID with its
// template in E2B's step form, and its start and ready commands (the
// builder checks the steps: a bad one is ErrInvalidArgument naming it). A
// build that is not waiting (started already, or expired) is
// ErrInvalidArgument.
func (s *Service) StartTemplateBuild(ctx context.Context, teamID, templateID, buildID string, spec TemplateSpec, startCmd, readyCmd string) error {
	if s.cfg.Builder == nil {
		return errNoBuilder()
	}
	rec, err := s.ownedBuild(ctx, teamID, templateID, buildID)
	if err != nil {
		return err
	}
	switch {
	case readyCmd != "" && startCmd == "":
		return invalidf("readyCmd: needs a startCmd")
	case strings.ContainsRune(startCmd, 0):
		return invalidf("startCmd: contains a NUL byte")
	case strings.ContainsRune(readyCmd, 0):
		return invalidf("readyCmd: contains a NUL byte")
	}
	unlock, err := s.lock(ctx, buildLockKey(buildID))
	if err != nil {
		return err
	}
	defer unlock()
	_, err = s.cfg.Builder.StartBuild(ctx, TemplateBuildRequest{
		Name: rec.TemplateID, BuildID: buildID, Spec: &spec, TeamID: teamID, StartCmd: startCmd, ReadyCmd: readyCmd,
		FromTemplate: func(ctx context.Context, ref string) (*store.Template, error) {
			return s.store.FindTemplate(ctx, teamID, ref)
		},
	})
	if err != nil {
		return err
	}
	s.log.Info("template build started", "template", rec.TemplateID, "team", teamID, "build", buildID)
	return nil
}

// teamTemplate checks that templateID (an ID or name) is team teamID's: a
// template of the team, or one it has a build of in progress.
func (s *Service) teamTemplate(ctx context.Context, teamID, templateID string) error {
	t, err := s.store.FindTemplate(ctx, teamID, templateID)
	if err == nil && t.TeamID == teamID {
		return nil
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrInvalid) {
		return internal("read template "+templateID, err)
	}
	running, err := s.store.ListRunningBuilds(ctx, teamID)
	if err != nil {
		return internal("list template builds", err)
	}
	for _, b := range running {
		if b.TemplateID == templateID || b.Name == templateID {
			return nil
		}
	}
	return templateNotFound(templateID)
}

// checkFilesHash refuses what is not an upload's name.
func checkFilesHash(hash string) error {
	if !filesHashRE.MatchString(hash) {
		return invalidf("hash: Invalid files hash %q: want 64 lower-case hex digits", hash)
	}
	return nil
}

// TemplateFileUpload reports whether team teamID has the files of hash
// uploaded, for a build of its template templateID.
func (s *Service) TemplateFileUpload(ctx context.Context, teamID, templateID, hash string) (bool, error) {
	if err := checkFilesHash(hash); err != nil {
		return false, err
	}
	if err := s.teamTemplate(ctx, teamID, templateID); err != nil {
		return false, err
	}
	if s.cfg.Builder == nil {
		return false, errNoBuilder()
	}
	return s.cfg.Builder.HasFile(ctx, teamID, hash)
}

// PutTemplateFile stores the files of hash (a tar archive, plain or gzip)
// that team teamID uploads for a build of its template templateID.
func (s *Service) PutTemplateFile(ctx context.Context, teamID, templateID, hash string, r io.Reader) error {
	if err := checkFilesHash(hash); err != nil {
		return err
	}
	if err := s.teamTemplate(ctx, teamID, templateID); err != nil {
		return err
	}
	if s.cfg.Builder == nil {
		return errNoBuilder()
	}
	return s.cfg.Builder.PutFile(ctx, teamID, hash, r)
}
