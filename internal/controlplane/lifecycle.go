package controlplane

import (
	"context"
	"errors"
	"time"

	"connectrpc.com/connect"

	agentv1 "lelantos.dev/lelantos/internal/gen/agent/v1"
	"lelantos.dev/lelantos/internal/store"
)

// MaxRefresh is the longest a single refresh may extend a sandbox.
const MaxRefresh = time.Hour

// kill ends sandbox id of team teamID and forgets it once the node
// confirms. An unknown (or dead, or another team's) sandbox is ErrNotFound;
// a dead one's leftovers are cleaned up anyway.
func (s *Service) kill(ctx context.Context, teamID, id string) error {
	if !validSandboxID(id) {
		return notFound(id)
	}
	unlock, err := s.lock(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	sb, err := s.store.GetSandbox(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && sb.TeamID != teamID) {
		return notFound(id)
	}
	if err != nil {
		return internal("read sandbox", err)
	}
	ended := sb.State == StateDead || sb.State == StateKilled
	if err := s.killLocked(ctx, sb, "killed on request"); err != nil {
		return err
	}
	if ended {
		return notFound(id)
	}
	return nil
}

// killLocked removes sb from the node (absent there is fine) and then from
// the store. The caller holds sb's lock. A live sb is first stored as killed,
// so that the proxy stops routing to it before the node ends it: requests
// during the kill (a client asking whether the sandbox runs after its stream
// was cut) get the 502 of a gone sandbox at once. If the node refuses, sb is
// stored back as it was; if it does not answer in time, sb stays killed and
// the kill is retried when the record is dropped (or reconciled at a restart).
func (s *Service) killLocked(ctx context.Context, sb *store.Sandbox, why string) error {
	was := *sb
	live := sb.State != StateDead && sb.State != StateKilled
	if live {
		sb.State = StateKilled
		sb.EndReason = why
		sb.Address = ""
		sb.EndAt = s.now()
		if err := s.save(ctx, sb); err != nil {
			return err
		}
	}
	s.dropKeptImage(ctx, sb.ID)
	node, err := s.nodeOf(ctx, sb.NodeID)
	if err == nil {
		nctx, cancel := s.nodeCtx(ctx)
		defer cancel()
		_, err = node.KillSandbox(nctx, connect.NewRequest(&agentv1.KillSandboxRequest{SandboxId: sb.ID}))
	}
	if err != nil && live && killLater(sb.NodeID, err) {
		// A node out of reach: the sandbox stays killed in the store, and
		// the node removes it when it reports again (ReconcileNode).
		s.log.Warn("sandbox killed while its node is out of reach; the node removes it when it reports again",
			"sandbox", sb.ID, "node", sb.NodeID, "err", err)
		s.event(ctx, sb.ID, "killed while node %s is out of reach: it is removed there when the node reports again", sb.NodeID)
		return nil
	}
	if code := connect.CodeOf(err); err != nil && code != connect.CodeNotFound {
		if live && code != connect.CodeDeadlineExceeded {
			sb.State, sb.EndReason, sb.Address, sb.EndAt = was.State, was.EndReason, was.Address, was.EndAt
			if serr := s.save(ctx, sb); serr != nil {
				s.log.Error("restore sandbox after a failed kill", "sandbox", sb.ID, "state", was.State, "err", serr)
			}
		}
		return nodeError("kill sandbox", sb.ID, err)
	}
	if err := s.store.DeleteSandbox(context.WithoutCancel(ctx), sb.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return internal("delete sandbox", err)
	}
	s.log.Info("sandbox killed", "sandbox", sb.ID, "reason", why)
	return nil
}

// killLater reports a failed kill on node nodeID that the node finishes
// itself when it reports again: a remote node out of reach (lost, or not
// answering), which reconciles the sandboxes the store holds as killed. The
// Service's own node has no such second chance.
func killLater(nodeID string, err error) bool {
	if nodeID == LocalNodeID {
		return false
	}
	return errors.Is(err, ErrUnavailable) || connect.CodeOf(err) == connect.CodeUnavailable
}

// nodeKill removes sandbox id from node nodeID; absent there is fine.
func (s *Service) nodeKill(ctx context.Context, nodeID, id string) error {
	node, err := s.nodeOf(ctx, nodeID)
	if err != nil {
		return err
	}
	nctx, cancel := s.nodeCtx(ctx)
	defer cancel()
	_, err = node.KillSandbox(nctx, connect.NewRequest(&agentv1.KillSandboxRequest{SandboxId: id}))
	if err != nil && connect.CodeOf(err) != connect.CodeNotFound {
		return nodeError("kill sandbox", id, err)
	}
	return nil
}

// Pause stops sandbox id of team teamID keeping its memory and files; see
// PauseWith.
func (s *Service) Pause(ctx context.Context, teamID, id string) error {
	return s.PauseWith(ctx, teamID, id, PauseRequest{})
}

// pauseLocked pauses running sb, keeping only its files when filesOnly; the
// caller holds its lock.
func (s *Service) pauseLocked(ctx context.Context, sb *store.Sandbox, why string, filesOnly bool) error {
	sb.State = StatePausing
	if err := s.save(ctx, sb); err != nil {
		return err
	}
	node, err := s.nodeOf(ctx, sb.NodeID)
	if err != nil {
		return s.nodeFailed(ctx, sb, StateRunning, "pause sandbox", err)
	}
	nctx, cancel := s.nodeCtx(ctx)
	defer cancel()
	_, err = node.PauseSandbox(nctx, connect.NewRequest(&agentv1.PauseSandboxRequest{SandboxId: sb.ID, FilesystemOnly: filesOnly}))
	if err != nil {
		return s.nodeFailed(ctx, sb, StateRunning, "pause sandbox", err)
	}
	s.setPaused(sb)
	if err := s.save(ctx, sb); err != nil {
		return err
	}
	kept := ""
	if !filesOnly {
		kept = s.keepImage(ctx, sb)
	}
	s.recordPauseKind(ctx, sb.ID, filesOnly, kept)
	if filesOnly {
		s.event(ctx, sb.ID, "sandbox paused with its files only (%s)", why)
	} else {
		s.event(ctx, sb.ID, "sandbox paused (%s)", why)
	}
	return nil
}

// setPaused records that the node paused sb. A paused sandbox's EndAt is
// when it was paused (or a later end time a client set): PausedRetention
// counts from it.
func (s *Service) setPaused(sb *store.Sandbox) {
	sb.State = StatePaused
	sb.Address = ""
	if now := s.now(); sb.EndAt.After(now) {
		sb.EndAt = now
	}
}

// nodeFailed handles a failed pause or resume: a sandbox the node does not
// know is dead (and reported as not found); a call the node did not answer
// in time leaves sb in its transitional state, since the node may still
// finish it, for the repair to settle with the node; otherwise sb goes back
// to state prev. The node's error is returned.
func (s *Service) nodeFailed(ctx context.Context, sb *store.Sandbox, prev, op string, err error) error {
	switch connect.CodeOf(err) {
	case connect.CodeNotFound:
		s.markDead(ctx, sb, "lost by node during "+op+": "+connectMessage(err))
		return notFound(sb.ID)
	case connect.CodeDeadlineExceeded:
		s.event(ctx, sb.ID, "%s: no answer from the node within %s; its state will be checked with the node", op, s.cfg.NodeTimeout)
		return nodeError(op, sb.ID, err)
	}
	sb.State = prev
	if serr := s.save(ctx, sb); serr != nil {
		s.log.Error("restore sandbox state", "sandbox", sb.ID, "state", prev, "err", serr)
	}
	s.event(ctx, sb.ID, "%s failed: %s", op, connectMessage(err))
	return nodeError(op, sb.ID, err)
}

// ResumeRequest are the options of Resume.
type ResumeRequest struct {
	// Timeout is the lifetime from now; 0 means DefaultTimeout.
	Timeout time.Duration
	// AutoPause, when set, replaces the sandbox's on-timeout action.
	AutoPause *bool
	// ColdBoot boots the sandbox fresh with its files, even when its pause
	// kept its memory.
	ColdBoot bool
}

// resume brings paused sandbox id of team teamID back; a running one is
// ErrConflict, one the team's quotas have no room for ErrQuota.
func (s *Service) resume(ctx context.Context, teamID, id string, req ResumeRequest) (*store.Sandbox, error) {
	timeout, err := s.timeoutOr("timeout", req.Timeout)
	if err != nil {
		return nil, err
	}
	unlock, err := s.lock(ctx, id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	sb, err := s.getOwned(ctx, teamID, id)
	if err != nil {
		return nil, err
	}
	if isRunningState(sb.State) {
		return nil, newError(ErrConflict, "sandbox %q is already running", id)
	}
	if req.AutoPause != nil {
		sb.AutoPause = *req.AutoPause
	}
	if err := s.resumeLocked(ctx, sb, timeout, req.ColdBoot); err != nil {
		return nil, err
	}
	return sb, nil
}

// resumeLocked resumes paused sb with a fresh end time, if its team's
// quotas have room for it (else ErrQuota, and it stays paused); the caller
// holds its lock.
func (s *Service) resumeLocked(ctx context.Context, sb *store.Sandbox, timeout time.Duration, coldBoot bool) error {
	prev := sb.State
	sb.State = StateResuming
	if err := s.store.UpdateSandboxWithin(context.WithoutCancel(ctx), sb, s.cfg.TeamQuotas); err != nil {
		sb.State = prev
		return storeError("update sandbox", err)
	}
	var tpl *store.Template
	if t, err := s.store.GetTemplate(ctx, sb.TemplateID); err == nil {
		tpl = t
	}
	// The spec only matters to a node that lost its record: details are
	// best effort.
	details, err := s.templateDetails(ctx, tpl)
	if err != nil {
		s.log.Warn("template details for resume", "sandbox", sb.ID, "err", err)
	}
	kept := s.keptImage(ctx, sb.ID)
	var resp interface {
		GetStatus() *agentv1.SandboxStatus
	}
	node, err := s.nodeOf(ctx, sb.NodeID)
	if err == nil {
		nctx, cancel := s.nodeCtx(ctx)
		defer cancel()
		var r *connect.Response[agentv1.ResumeSandboxResponse]
		if r, err = node.ResumeSandbox(nctx, connect.NewRequest(&agentv1.ResumeSandboxRequest{
			SandboxId: sb.ID, Spec: spec(sb, tpl, details), ColdBoot: coldBoot})); err == nil {
			resp = r.Msg
		}
	}
	if err != nil && kept != "" && !coldBoot && movable(err) {
		// Its node is gone or full: start it elsewhere from the image kept
		// at its pause.
		resp, err = s.resumeElsewhere(ctx, sb, spec(sb, tpl, details), kept, err)
	}
	if err != nil {
		return s.nodeFailed(ctx, sb, StatePaused, "resume sandbox", err)
	}
	sb.State = StateRunning
	sb.Address = resp.GetStatus().GetAddress()
	sb.EndAt = s.now().Add(timeout)
	if err := s.save(ctx, sb); err != nil {
		return err
	}
	s.event(ctx, sb.ID, "sandbox resumed at %s, ends at %s", sb.Address, sb.EndAt.Format(time.RFC3339))
	if kept != "" {
		s.dropKeptImage(ctx, sb.ID) // the sandbox runs on: the image is of its past
	}
	return nil
}

// Connect makes sure sandbox id of team teamID runs for at least timeout
// more (0 means DefaultTimeout); see ConnectWith.
func (s *Service) Connect(ctx context.Context, teamID, id string, timeout time.Duration) (sb *store.Sandbox, resumed bool, err error) {
	return s.ConnectWith(ctx, teamID, id, ConnectRequest{Timeout: timeout})
}

// ConnectRequest are the options of ConnectWith.
type ConnectRequest struct {
	// Timeout is how long the sandbox must run at least from now; 0 means
	// DefaultTimeout.
	Timeout time.Duration
	// ColdBoot resumes a paused sandbox booted fresh with its files, even when
	// its pause kept its memory.
	ColdBoot bool
}

// connectWith makes sure sandbox id of team teamID runs for at least
// req.Timeout more: a running sandbox's end time is only ever extended, a
// paused one is resumed (with its memory, unless req.ColdBoot or its pause
// kept only its files). resumed tells which happened. Its on-timeout action
// is kept.
func (s *Service) connectWith(ctx context.Context, teamID, id string, req ConnectRequest) (sb *store.Sandbox, resumed bool, err error) {
	timeout, err := s.timeoutOr("timeout", req.Timeout)
	if err != nil {
		return nil, false, err
	}
	unlock, err := s.lock(ctx, id)
	if err != nil {
		return nil, false, err
	}
	defer unlock()
	sb, err = s.getOwned(ctx, teamID, id)
	if err != nil {
		return nil, false, err
	}
	if !isRunningState(sb.State) {
		if err := s.resumeLocked(ctx, sb, timeout, req.ColdBoot); err != nil {
			return nil, false, err
		}
		return sb, true, nil
	}
	if err := s.extendLocked(ctx, sb, timeout); err != nil {
		return nil, false, err
	}
	return sb, false, nil
}

// extendLocked moves sb's end time to now+d if that is later.
func (s *Service) extendLocked(ctx context.Context, sb *store.Sandbox, d time.Duration) error {
	end := s.now().Add(d)
	if !end.After(sb.EndAt) {
		return nil
	}
	sb.EndAt = end
	return s.save(ctx, sb)
}

// SetTimeout sets the end time of sandbox id of team teamID to now+timeout,
// shortening it if so asked (0 ends it at the next reaper pass).
func (s *Service) SetTimeout(ctx context.Context, teamID, id string, timeout time.Duration) error {
	if timeout < 0 || timeout > s.cfg.MaxTimeout {
		_, err := s.timeoutOr("timeout", timeout)
		return err
	}
	unlock, err := s.lock(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	sb, err := s.getOwned(ctx, teamID, id)
	if err != nil {
		return err
	}
	sb.EndAt = s.now().Add(timeout)
	return s.save(ctx, sb)
}

// Refresh extends sandbox id of team teamID to live at least d more (0
// means DefaultTimeout, at most MaxRefresh); it never shortens.
func (s *Service) Refresh(ctx context.Context, teamID, id string, d time.Duration) error {
	if d < 0 || d > MaxRefresh {
		return invalidf("duration: must be between 0 and %d seconds", int64(MaxRefresh/time.Second))
	}
	if d == 0 {
		d = min(s.cfg.DefaultTimeout, MaxRefresh)
	}
	unlock, err := s.lock(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	sb, err := s.getOwned(ctx, teamID, id)
	if err != nil {
		return err
	}
	return s.extendLocked(ctx, sb, d)
}
