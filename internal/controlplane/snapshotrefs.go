package controlplane

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	agentv1 "lelantos.dev/lelantos/internal/gen/agent/v1"
	"lelantos.dev/lelantos/internal/store"
)

// ownSnapshotTemplate finds the snapshot template of team that name (an ID or
// a name, with an optional namespace and tag) means; nil when there is none.
// A malformed name or another team's namespace is nil too: no such snapshot.
func (s *Service) ownSnapshotTemplate(ctx context.Context, team *store.Team, name string) (*store.Template, templateRef, error) {
	ref, err := parseRef(name)
	if err != nil || (ref.Namespace != "" && ref.Namespace != team.Slug) {
		return nil, ref, nil
	}
	t, err := s.store.GetTemplate(ctx, ref.Alias)
	if errors.Is(err, store.ErrNotFound) || (err == nil && t.TeamID != team.ID) {
		t, err = s.store.FindTemplate(ctx, team.ID, ref.Alias)
	}
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) || (err == nil && t.TeamID != team.ID) {
		return nil, ref, nil
	}
	if err != nil {
		return nil, ref, internal("read template "+ref.Alias, err)
	}
	builds, err := s.store.TemplateSnapshots(ctx, t.ID)
	if err != nil {
		return nil, ref, internal("read snapshots of template "+t.ID, err)
	}
	if len(builds) == 0 {
		return nil, ref, nil
	}
	return t, ref, nil
}

// snapshotBuild is the build a create of team teamID from name starts from:
// the newest of its tag of the team's snapshot template name means. found is
// false when name means no snapshot template (it may be another template).
func (s *Service) snapshotBuild(ctx context.Context, teamID, name string) (tpl *store.Template, build *store.Snapshot, found bool, err error) {
	team, err := s.team(ctx, teamID)
	if err != nil {
		return nil, nil, false, err
	}
	t, ref, err := s.ownSnapshotTemplate(ctx, team, name)
	if err != nil || t == nil {
		return nil, nil, false, err
	}
	builds, err := s.store.TemplateSnapshots(ctx, t.ID)
	if err != nil {
		return nil, nil, false, internal("read snapshots of template "+t.ID, err)
	}
	for _, b := range builds { // newest first
		if b.Tag == ref.Tag {
			return t, b, true, nil
		}
	}
	return nil, nil, true, invalidf("templateID: tag %q does not exist for snapshot %q", ref.Tag, name)
}

// deleteSnapshotTemplate removes snapshot template t and every build of it,
// from the node first. Sandboxes started from it must be gone (else
// ErrInvalidArgument, as E2B answers).
func (s *Service) deleteSnapshotTemplate(ctx context.Context, t *store.Template, builds []*store.Snapshot) error {
	used, err := s.TemplateInUse(ctx, t.ID)
	if err != nil {
		return err
	}
	if used {
		return invalidf("snapshot %q is the base of sandboxes that still run; kill them first", t.ID)
	}
	for _, b := range builds {
		node, err := s.nodeOf(ctx, b.NodeID)
		if err != nil {
			return err
		}
		nctx, cancel := s.nodeCtx(ctx)
		_, err = node.DeleteSnapshot(nctx, connect.NewRequest(&agentv1.DeleteSnapshotRequest{SnapshotId: b.ID}))
		cancel()
		if err != nil && connect.CodeOf(err) != connect.CodeNotFound {
			return nodeError("delete snapshot", b.ID, err)
		}
		if err := s.store.DeleteSnapshot(context.WithoutCancel(ctx), b.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return internal("delete snapshot "+b.ID, err)
		}
		if b.KeptImage != "" && s.cfg.Images != nil {
			if err := s.cfg.Images.DropImage(context.WithoutCancel(ctx), b.KeptImage); err != nil {
				s.log.Warn("drop the kept copy of a snapshot", "snapshot", b.ID, "err", err)
			}
		}
	}
	if err := s.store.DeleteTemplate(context.WithoutCancel(ctx), t.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return internal("delete template "+t.ID, err)
	}
	s.log.Info("snapshot deleted", "template", t.ID, "builds", len(builds))
	return nil
}

// deleteIfSnapshot deletes the snapshot template name means to team teamID, if
// it means one: handled tells whether it did (or failed to).
func (s *Service) deleteIfSnapshot(ctx context.Context, teamID, name string) (handled bool, err error) {
	team, err := s.team(ctx, teamID)
	if err != nil {
		return true, err
	}
	t, _, err := s.ownSnapshotTemplate(ctx, team, name)
	if err != nil || t == nil {
		return err != nil, err
	}
	builds, err := s.store.TemplateSnapshots(ctx, t.ID)
	if err != nil {
		return true, internal("read snapshots of template "+t.ID, err)
	}
	return true, s.deleteSnapshotTemplate(ctx, t, builds)
}

// dropNodeSnapshot removes a snapshot the store could not record from node
// nodeID.
func (s *Service) dropNodeSnapshot(ctx context.Context, nodeID, id string) {
	node, err := s.nodeOf(ctx, nodeID)
	if err != nil {
		s.log.Warn("remove an unrecorded snapshot from the node", "snapshot", id, "err", err)
		return
	}
	nctx, cancel := s.nodeCtx(ctx)
	defer cancel()
	if _, err := node.DeleteSnapshot(nctx, connect.NewRequest(&agentv1.DeleteSnapshotRequest{SnapshotId: id})); err != nil &&
		connect.CodeOf(err) != connect.CodeNotFound {
		s.log.Warn("remove an unrecorded snapshot from the node", "snapshot", id, "err", err)
	}
}

// afterInPlaceFailure learns from the node whether sb survived a failed
// checkpoint in place (for a snapshot or a fork): a sandbox the node no longer
// runs is recorded as dead.
func (s *Service) afterInPlaceFailure(ctx context.Context, sb *store.Sandbox, op string, cause error) {
	node, err := s.nodeOf(ctx, sb.NodeID)
	if err != nil {
		s.log.Warn("check a sandbox after a failed "+op, "sandbox", sb.ID, "err", err)
		return
	}
	nctx, cancel := s.nodeCtx(ctx)
	defer cancel()
	resp, err := node.ListSandboxes(nctx, connect.NewRequest(&agentv1.ListSandboxesRequest{}))
	if err != nil {
		s.log.Warn("check a sandbox after a failed "+op, "sandbox", sb.ID, "err", err)
		return
	}
	for _, st := range resp.Msg.GetSandboxes() {
		if st.GetSandboxId() == sb.ID && st.GetState() != agentv1.SandboxState_SANDBOX_STATE_DEAD {
			s.event(ctx, sb.ID, "%s failed: %s", op, connectMessage(cause))
			return
		}
	}
	s.markDead(ctx, sb, op+" failed: "+connectMessage(cause))
}

// team reads team teamID.
func (s *Service) team(ctx context.Context, teamID string) (*store.Team, error) {
	if err := needTeam(teamID); err != nil {
		return nil, err
	}
	t, err := s.store.GetTeam(ctx, teamID)
	if err != nil {
		return nil, internal("read team", err)
	}
	return t, nil
}

// noAccess is E2B's answer about a sandbox that cannot be snapshotted because it
// is not running or not the caller's.
func noAccess(id string) error {
	return newError(ErrNotFound, "Sandbox %q doesn't exist or you don't have access to it", id)
}

// clientVisible names a transitional state as E2B does.
func clientVisible(state string) string {
	switch state {
	case StatePausing:
		return "pausing"
	case StateResuming, StateStarting:
		return "resuming"
	}
	return state
}
