package controlplane

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	agentv1 "lelantos.dev/lelantos/internal/gen/agent/v1"
	"lelantos.dev/lelantos/internal/store"
)

// SnapshotStore is the part of the Store that keeps snapshots and the lifecycle
// settings of sandboxes; *store.DB implements it.
type SnapshotStore interface {
	PutSnapshot(ctx context.Context, t *store.Template, s *store.Snapshot) error
	TemplateSnapshots(ctx context.Context, templateID string) ([]*store.Snapshot, error)
	ListSnapshots(ctx context.Context, f store.SnapshotFilter) ([]*store.Snapshot, string, error)
	DeleteSnapshot(ctx context.Context, id string) error
	DeleteTemplate(ctx context.Context, id string) error
	GetTeam(ctx context.Context, id string) (*store.Team, error)
	PutSandboxLifecycle(ctx context.Context, id string, l store.SandboxLifecycle) error
	SandboxLifecycleOf(ctx context.Context, id string) (store.SandboxLifecycle, error)
}

// MaxSnapshotListLimit is the largest page of GET /snapshots, and its default.
const MaxSnapshotListLimit = 100

// SnapshotInfo is a snapshot as clients see it.
type SnapshotInfo struct {
	// SnapshotID is what a create names to start from the snapshot.
	SnapshotID string
	// Names are the template's names ("<team slug>/<name>"), none when unnamed.
	Names []string
}

// SnapshotRequest is a snapshot to take.
type SnapshotRequest struct {
	// Name, when set, is [<team slug>/]<name>[:<tag>]: a name the team has for
	// a snapshot gets a new build of that tag.
	Name string
}

// SnapshotListRequest selects snapshots of a team.
type SnapshotListRequest struct {
	// SandboxID keeps the snapshots taken of that sandbox.
	SandboxID string
	// Name keeps one snapshot template, by name or ID; with a tag, only its
	// builds of that tag.
	Name string
	// Limit is 1..MaxSnapshotListLimit; 0 means MaxSnapshotListLimit.
	Limit int
	// Cursor is the token of the previous page.
	Cursor string
}

// createSnapshot checkpoints running sandbox id of team teamID in place into a
// snapshot: a template of the team whose newest build a create can start from,
// independent of the sandbox. The sandbox runs on with its ID and end time. A
// sandbox that is not running (or not the team's) is ErrNotFound; one in a
// transition, ErrConflict.
func (s *Service) createSnapshot(ctx context.Context, teamID, id string, req SnapshotRequest) (*SnapshotInfo, error) {
	team, err := s.team(ctx, teamID)
	if err != nil {
		return nil, err
	}
	var ref templateRef
	if req.Name != "" {
		if ref, err = parseRef(req.Name); err != nil {
			return nil, err
		}
		if ref.Namespace != "" && ref.Namespace != team.Slug {
			return nil, invalidf("Invalid name: namespace %q is not your team's (%q)", ref.Namespace, team.Slug)
		}
	}
	unlock, err := s.lock(ctx, id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	sb, err := s.getOwned(ctx, teamID, id)
	if errors.Is(err, ErrNotFound) {
		return nil, noAccess(id)
	}
	if err != nil {
		return nil, err
	}
	switch sb.State {
	case StateRunning:
	case StatePaused:
		return nil, noAccess(id)
	default:
		return nil, newError(ErrConflict, "Sandbox '%s' cannot be snapshotted while in '%s' state", id, clientVisible(sb.State))
	}
	tpl, err := s.snapshotTemplateFor(ctx, teamID, ref)
	if err != nil {
		return nil, err
	}
	snap := &store.Snapshot{ID: newSandboxID(), TeamID: teamID, Tag: ref.Tag, SandboxID: sb.ID,
		BaseTemplateID: sb.TemplateID, NodeID: sb.NodeID, RuntimeClass: sb.RuntimeClass}
	if snap.Tag == "" {
		snap.Tag = DefaultTag
	}
	node, err := s.nodeOf(ctx, sb.NodeID)
	if err != nil {
		return nil, err
	}
	nctx, cancel := s.nodeCtx(ctx)
	defer cancel()
	resp, err := node.SnapshotSandbox(nctx, connect.NewRequest(&agentv1.SnapshotSandboxRequest{SandboxId: sb.ID, SnapshotId: snap.ID}))
	if err != nil {
		s.afterInPlaceFailure(ctx, sb, "snapshot", err)
		return nil, nodeError("snapshot sandbox", sb.ID, err)
	}
	src := resp.Msg.GetSource()
	snap.SizeBytes = resp.Msg.GetSizeBytes()
	snap.KeptImage = s.keepSnapshot(ctx, snap.NodeID, snap.ID)
	tpl.RootfsPath, tpl.CPUCount, tpl.MemoryMB, tpl.DiskSizeMB = src.GetTemplateRootfs(),
		int(src.GetCpuCount()), int(src.GetMemoryMb()), int(src.GetDiskSizeMb())
	tpl.EnvdVersion = sb.EnvdVersion
	if err := s.store.PutSnapshot(context.WithoutCancel(ctx), tpl, snap); err != nil {
		s.dropNodeSnapshot(ctx, snap.NodeID, snap.ID)
		if errors.Is(err, store.ErrExists) {
			return nil, invalidf("Invalid name: %q names another template of your team", ref.Alias)
		}
		return nil, internal("store snapshot", err)
	}
	s.event(ctx, sb.ID, "snapshot %s taken (template %s, tag %s)", snap.ID, tpl.ID, snap.Tag)
	s.log.Info("snapshot taken", "sandbox", sb.ID, "snapshot", snap.ID, "template", tpl.ID)
	return &SnapshotInfo{SnapshotID: snapshotID(team.Slug, tpl.ID, tpl.Name, snap.Tag),
		Names: snapshotNames(team.Slug, tpl.ID, tpl.Name)}, nil
}

// snapshotTemplateFor is the template a new snapshot named ref becomes a build
// of: the team's snapshot template of that name, or a new one (unnamed when ref
// has no alias). A name of another kind of template is refused.
func (s *Service) snapshotTemplateFor(ctx context.Context, teamID string, ref templateRef) (*store.Template, error) {
	if ref.Alias == "" {
		return &store.Template{ID: newSandboxID()}, nil
	}
	t, err := s.store.FindTemplate(ctx, teamID, ref.Alias)
	switch {
	case errors.Is(err, store.ErrNotFound) || (err == nil && t.TeamID != teamID):
		return &store.Template{ID: newSandboxID(), Name: ref.Alias}, nil
	case err != nil:
		return nil, internal("read template "+ref.Alias, err)
	}
	builds, err := s.store.TemplateSnapshots(ctx, t.ID)
	if err != nil {
		return nil, internal("read snapshots of template "+t.ID, err)
	}
	if len(builds) == 0 {
		return nil, invalidf("Invalid name: %q names a template of your team that is not a snapshot", ref.Alias)
	}
	return &store.Template{ID: t.ID}, nil
}

// ListSnapshots returns a page of the snapshots of team teamID, newest first,
// and the cursor of the next page ("" when none).
func (s *Service) ListSnapshots(ctx context.Context, teamID string, req SnapshotListRequest) ([]SnapshotInfo, string, error) {
	team, err := s.team(ctx, teamID)
	if err != nil {
		return nil, "", err
	}
	if req.Limit < 0 || req.Limit > MaxSnapshotListLimit {
		return nil, "", invalidf("limit: must be between 1 and %d", MaxSnapshotListLimit)
	}
	f := store.SnapshotFilter{TeamID: teamID, Limit: req.Limit, Cursor: req.Cursor}
	if f.Limit == 0 {
		f.Limit = MaxSnapshotListLimit
	}
	if req.SandboxID != "" {
		if !validSandboxID(req.SandboxID) {
			return nil, "", invalidf("Invalid sandbox ID")
		}
		f.SandboxID = req.SandboxID
	}
	if req.Name != "" {
		t, ref, err := s.ownSnapshotTemplate(ctx, team, req.Name)
		if err != nil || t == nil {
			return []SnapshotInfo{}, "", err
		}
		f.TemplateID = t.ID
		if ref.Tagged {
			f.Tag = ref.Tag
		}
	}
	snaps, next, err := s.store.ListSnapshots(ctx, f)
	if errors.Is(err, store.ErrInvalidCursor) {
		return nil, "", invalidf("Invalid next token")
	}
	if err != nil {
		return nil, "", internal("list snapshots", err)
	}
	names := map[string]string{}
	if len(snaps) > 0 {
		ts, err := s.store.ListTeamTemplates(ctx, teamID)
		if err != nil {
			return nil, "", internal("list templates", err)
		}
		for _, t := range ts {
			names[t.ID] = t.Name
		}
	}
	out := make([]SnapshotInfo, 0, len(snaps))
	for _, sn := range snaps {
		name := names[sn.TemplateID]
		out = append(out, SnapshotInfo{SnapshotID: snapshotID(team.Slug, sn.TemplateID, name, sn.Tag),
			Names: snapshotNames(team.Slug, sn.TemplateID, name)})
	}
	return out, next, nil
}
