package controlplane

import (
	"context"
	"errors"
	"maps"
	"time"

	"connectrpc.com/connect"

	agentv1 "lelantos.dev/lelantos/internal/gen/agent/v1"
	"lelantos.dev/lelantos/internal/store"
)

// MaxForks is the most forks one request may ask for.
const MaxForks = 100

// ForkRequest are the options of Fork.
type ForkRequest struct {
	// Timeout is each fork's lifetime from when it runs; 0 means DefaultTimeout.
	Timeout time.Duration
	// Count is how many forks to make, 1..MaxForks.
	Count int
}

// ForkResult is one fork: the new sandbox, or why it could not be made (an
// error with its kind: ErrQuota, ErrUnavailable for a full node, ...).
type ForkResult struct {
	Sandbox *store.Sandbox
	Err     error
}

// fork makes req.Count new sandboxes of team teamID from running sandbox id:
// the source is checkpointed in place (it pauses briefly and runs on with its
// ID, end time and resources) and each fork starts from that moment with its
// memory, processes and files, under a new ID, access tokens and end time.
// Each fork is admitted by the team's quotas and the node on its own: the
// result has one entry per fork, in order. The error is about the request or
// the source: ErrInvalidArgument, ErrNotFound, ErrConflict (paused or in a
// transition), or the node's.
func (s *Service) fork(ctx context.Context, teamID, id string, req ForkRequest) ([]ForkResult, error) {
	timeout, err := s.timeoutOr("timeout", req.Timeout)
	if err != nil {
		return nil, err
	}
	switch {
	case req.Count < 1:
		return nil, invalidf("count: Count must be at least 1")
	case req.Count > MaxForks:
		return nil, invalidf("count: Count cannot be greater than %d", MaxForks)
	}
	unlock, err := s.lock(ctx, id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	src, err := s.getOwned(ctx, teamID, id)
	if err != nil {
		return nil, err
	}
	switch src.State {
	case StateRunning:
	case StatePaused:
		return nil, newError(ErrConflict, "Sandbox '%s' is paused and cannot be forked; resume it first", id)
	default:
		return nil, newError(ErrConflict, "Sandbox '%s' cannot be forked while in '%s' state", id, clientVisible(src.State))
	}
	routes, err := s.forkRoutes(ctx, src, req.Count)
	if err != nil {
		return nil, err
	}
	lc, err := s.store.SandboxLifecycleOf(ctx, src.ID)
	if err != nil {
		return nil, internal("read sandbox lifecycle", err)
	}
	lc.Timeout, lc.PausedMemory, lc.KeptImage = timeout, true, ""

	results := make([]ForkResult, req.Count)
	var admitted []*store.Sandbox
	var at []int // admitted[j] is fork at[j]
	now := s.now()
	for i := range results {
		f := forkRecord(src, now, timeout)
		if routes != nil {
			f.NodeID = routes.first(i)
		}
		// Nobody knows the ID yet, but the reaper and Reconcile might see the row.
		unlockFork, err := s.lock(ctx, f.ID)
		if err != nil {
			results[i].Err = err
			continue
		}
		defer unlockFork()
		if err := s.store.InsertSandboxWithin(ctx, f, s.cfg.TeamQuotas); err != nil {
			results[i].Err = storeError("fork sandbox: store", err)
			continue
		}
		if err := s.store.PutSandboxLifecycle(ctx, f.ID, lc); err != nil {
			s.log.Warn("store the lifecycle of a fork", "sandbox", f.ID, "err", err)
		}
		s.event(ctx, f.ID, "sandbox forked from %s", src.ID)
		admitted, at = append(admitted, f), append(at, i)
	}
	if len(admitted) == 0 {
		return results, nil
	}
	start := s.forkInPlace
	if routes != nil {
		start = func(ctx context.Context, src *store.Sandbox, admitted []*store.Sandbox, at []int, results []ForkResult, timeout time.Duration) error {
			return s.forkAcross(ctx, src, admitted, at, routes, results, timeout)
		}
	}
	if err := start(ctx, src, admitted, at, results, timeout); err != nil {
		return nil, err
	}
	return results, nil
}

// forkInPlace makes admitted, the records of forks at[j] of results, on
// src's own node from one checkpoint of src, filling in their results; the
// error is about the source (its node failed the fork as a whole), and then
// no fork was made.
func (s *Service) forkInPlace(ctx context.Context, src *store.Sandbox, admitted []*store.Sandbox, at []int, results []ForkResult, timeout time.Duration) error {
	specs := make([]*agentv1.SandboxSpec, len(admitted))
	for j, f := range admitted {
		specs[j] = &agentv1.SandboxSpec{SandboxId: f.ID, TemplateId: f.TemplateID, EnvdAccessToken: f.EnvdAccessToken}
	}
	node, err := s.nodeOf(ctx, src.NodeID)
	if err != nil {
		for _, f := range admitted {
			s.dropFork(ctx, f)
		}
		return err
	}
	nctx, cancel := s.nodeCtx(ctx)
	defer cancel()
	resp, err := node.ForkSandbox(nctx, connect.NewRequest(&agentv1.ForkSandboxRequest{SandboxId: src.ID, Forks: specs}))
	if err != nil {
		for _, f := range admitted {
			s.dropFork(ctx, f)
		}
		if connect.CodeOf(err) == connect.CodeNotFound {
			s.markDead(ctx, src, "lost by node during fork: "+connectMessage(err))
			return notFound(src.ID)
		}
		s.afterInPlaceFailure(ctx, src, "fork", err)
		return nodeError("fork sandbox", src.ID, err)
	}
	made := 0
	for j, f := range admitted {
		i := at[j]
		var r *agentv1.ForkResult
		if j < len(resp.Msg.GetResults()) {
			r = resp.Msg.GetResults()[j]
		}
		switch {
		case r == nil:
			s.dropFork(ctx, f)
			results[i].Err = internal("fork sandbox "+f.ID, errors.New("the node gave no result for it"))
		case r.GetError() != "":
			s.dropFork(ctx, f)
			results[i].Err = nodeError("fork sandbox", f.ID, connect.NewError(connect.Code(r.GetErrorCode()), errors.New(r.GetError())))
		default:
			if results[i].Err = s.forkRunning(ctx, f, r.GetStatus().GetAddress(), timeout); results[i].Err == nil {
				results[i].Sandbox = f
				made++
			}
		}
	}
	s.event(ctx, src.ID, "sandbox checkpointed in place and forked into %d sandbox(es)", made)
	return nil
}

// forkRunning records fork f as running at address on its node until
// timeout from now; a fork that cannot be recorded is removed from its node.
func (s *Service) forkRunning(ctx context.Context, f *store.Sandbox, address string, timeout time.Duration) error {
	f.State = StateRunning
	f.Address = address
	f.StartedAt = s.now()
	f.EndAt = f.StartedAt.Add(timeout)
	if err := s.save(ctx, f); err != nil {
		s.bestEffortKill(ctx, f.NodeID, f.ID)
		return err
	}
	s.event(ctx, f.ID, "sandbox running on node %s at %s, ends at %s", f.NodeID, f.Address, f.EndAt.Format(time.RFC3339))
	return nil
}

// forkRecord is the record of a new fork of src: src's settings (template,
// sizes, metadata, variables, network, lifecycle...) under a new ID and new
// tokens, starting now.
func forkRecord(src *store.Sandbox, now time.Time, timeout time.Duration) *store.Sandbox {
	f := *src
	f.ID = newSandboxID()
	f.EnvdAccessToken = randomHex(32)
	if src.TrafficAccessToken != "" {
		f.TrafficAccessToken = randomHex(32)
	}
	f.Metadata, f.EnvVars = maps.Clone(src.Metadata), maps.Clone(src.EnvVars)
	if src.AllowInternetAccess != nil {
		allow := *src.AllowInternetAccess
		f.AllowInternetAccess = &allow
	}
	f.Network = append([]byte(nil), src.Network...)
	if src.Network == nil {
		f.Network = nil
	}
	f.ClientID = ClientID
	f.State = StateStarting
	f.StartedAt, f.EndAt = now, now.Add(timeout)
	f.Address, f.EndReason = "", ""
	f.CreatedAt, f.UpdatedAt, f.Version = time.Time{}, time.Time{}, 0
	return &f
}

// dropFork forgets a fork the node did not make: its ID was never given out.
func (s *Service) dropFork(ctx context.Context, f *store.Sandbox) {
	if err := s.store.DeleteSandbox(context.WithoutCancel(ctx), f.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Warn("drop the record of a failed fork", "sandbox", f.ID, "err", err)
	}
}
