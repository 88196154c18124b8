package controlplane

import (
	"context"
	"errors"

	"lelantos.dev/lelantos/internal/store"
)

// buildLockKey is the key of build id in the Service's keyed mutex (sandbox
// IDs have no '/').
func buildLockKey(id string) string { return "build/" + id }

// TemplateBuildStatus reports a build of team teamID; templateID names the
// build's template (its ID, or a name or alias the team knows it by). A
// build of another template or of another team is ErrNotFound.
func (s *Service) TemplateBuildStatus(ctx context.Context, teamID, templateID, buildID string) (*TemplateBuild, error) {
	if s.cfg.Builder == nil {
		return nil, errNoBuilder()
	}
	notFound := newError(ErrNotFound, "build %q of template %q not found", buildID, templateID)
	var owner, tplID, name string
	rec, err := s.store.GetTemplateBuild(ctx, buildID)
	switch {
	case err == nil:
		owner, tplID, name = rec.TeamID, rec.TemplateID, rec.Name
	case !errors.Is(err, store.ErrNotFound):
		return nil, internal("read template build "+buildID, err)
	}
	b, err := s.cfg.Builder.Build(ctx, buildID)
	if errors.Is(err, ErrNotFound) {
		return nil, notFound
	}
	if err != nil {
		return nil, err
	}
	if owner == "" {
		// A build from before teams: the team of its template owns it.
		t, err := s.store.GetTemplate(ctx, b.TemplateID)
		if err != nil {
			return nil, notFound
		}
		owner, tplID, name = t.TeamID, t.ID, t.Name
	}
	if owner != teamID || b.TemplateID != tplID {
		return nil, notFound
	}
	if templateID != tplID && templateID != name {
		t, err := s.store.FindTemplate(ctx, teamID, templateID)
		if err != nil || t.ID != tplID {
			return nil, notFound
		}
	}
	if rec != nil && rec.Status == store.BuildRunning {
		s.recordEnd(ctx, b)
	}
	return b, nil
}

// TemplateBuildLogs returns up to limit entries of a build's log from the
// offset-th on (0-based), as E2B's logsOffset counts them; the build is
// looked up as by TemplateBuildStatus.
func (s *Service) TemplateBuildLogs(ctx context.Context, teamID, templateID, buildID string, offset, limit int) ([]TemplateLogEntry, error) {
	if _, err := s.TemplateBuildStatus(ctx, teamID, templateID, buildID); err != nil {
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

// syncBuilds records the end of the builds of team teamID (of every team
// when "") that the store still counts as running but the builder finished
// or no longer knows (a restart ends running builds), so that they stop
// counting against max-builds.
func (s *Service) syncBuilds(ctx context.Context, teamID string) {
	if s.cfg.Builder == nil {
		return
	}
	running, err := s.store.ListRunningBuilds(ctx, teamID)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("list running template builds", "err", err)
		}
		return
	}
	for _, rec := range running {
		s.syncBuild(ctx, rec.ID)
	}
}

// syncBuild records the end of build id if the builder says it ended.
func (s *Service) syncBuild(ctx context.Context, id string) {
	unlock, err := s.lock(ctx, buildLockKey(id))
	if err != nil {
		return
	}
	defer unlock()
	b, err := s.cfg.Builder.Build(ctx, id)
	switch {
	case errors.Is(err, ErrNotFound):
		b = &TemplateBuild{BuildID: id, Status: BuildError}
	case err != nil:
		if ctx.Err() == nil {
			s.log.Warn("read template build", "build", id, "err", err)
		}
		return
	}
	s.recordEnd(ctx, b)
}

// recordEnd stores the end of build b once it ended.
func (s *Service) recordEnd(ctx context.Context, b *TemplateBuild) {
	if b.Status == BuildBuilding || b.Status == BuildWaiting {
		return
	}
	status, at := store.BuildFinished, s.now()
	if b.Status != BuildReady {
		status = store.BuildFailed
	}
	if b.FinishedAt != nil {
		at = *b.FinishedAt
	}
	if err := s.store.FinishTemplateBuild(context.WithoutCancel(ctx), b.BuildID, status, at); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Warn("record the end of a template build", "build", b.BuildID, "err", err)
	}
}
