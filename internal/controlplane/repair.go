package controlplane

import (
	"context"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"

	agentv1 "lelantos.dev/lelantos/internal/gen/agent/v1"
	"lelantos.dev/lelantos/internal/store"
)

// transitionalStates are the states a sandbox is in only while an operation
// on it runs.
var transitionalStates = []string{StateStarting, StatePausing, StateResuming}

// maxTracked bounds how many transitional sandboxes the repair follows at
// once; more are picked up by later passes.
const maxTracked = 10000

// sighting is when the repair first saw a sandbox in a transitional state,
// at which version of its record.
type sighting struct {
	version int64
	since   time.Time
}

// repairer is the memory of the repair between passes: the transitional
// sandboxes seen and since when. It belongs to one Run.
type repairer struct {
	seen map[string]sighting
}

func newRepairer() *repairer { return &repairer{seen: map[string]sighting{}} }

// stuck is a sandbox the repair holds the lock of, with its record.
type stuck struct {
	sb     *store.Sandbox
	unlock func()
}

// repairOnce settles sandboxes stuck in a transitional state while the
// server runs (a node call that never answered, a node that lost the
// sandbox): a sandbox whose record has not changed for twice NodeTimeout
// and that no operation holds takes the state the node reports (running,
// paused), or is dead when the node does not hold it. A sandbox an
// operation holds is left alone. Each repair is logged and recorded in the
// sandbox's log.
func (s *Service) repairOnce(ctx context.Context, r *repairer) {
	now := s.now()
	bound := 2 * s.cfg.NodeTimeout
	seen := make(map[string]sighting, len(r.seen))
	due := map[string]int64{} // ID: version
	err := s.forEach(ctx, store.SandboxFilter{States: transitionalStates}, func(sb *store.Sandbox) error {
		prev, ok := r.seen[sb.ID]
		if !ok || prev.version != sb.Version {
			if len(seen) >= maxTracked {
				return nil
			}
			prev = sighting{version: sb.Version, since: now}
		}
		seen[sb.ID] = prev
		if now.Sub(prev.since) >= bound {
			due[sb.ID] = prev.version
		}
		return nil
	})
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("repair: list sandboxes in a transitional state", "err", err)
		}
		return
	}
	r.seen = seen
	if len(due) == 0 {
		return
	}
	held := s.holdStuck(ctx, due)
	defer func() {
		for _, h := range held {
			h.unlock()
		}
	}()
	if len(held) == 0 {
		return
	}
	// The locks are taken before the nodes are asked, so what they report
	// cannot be overtaken by an operation on these sandboxes.
	byNode := map[string][]stuck{}
	for _, h := range held {
		byNode[h.sb.NodeID] = append(byNode[h.sb.NodeID], h)
	}
	for nodeID, group := range byNode {
		onNode, err := s.nodeSandboxes(ctx, nodeID)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("repair: list node sandboxes", "node", nodeID, "err", err)
			}
			continue
		}
		for _, h := range group {
			if err := s.repairLocked(ctx, h.sb, onNode[h.sb.ID], bound); err != nil && ctx.Err() == nil {
				s.log.Error("repair: settle sandbox", "sandbox", h.sb.ID, "err", err)
			}
			delete(r.seen, h.sb.ID)
		}
	}
}

// nodeSandboxes asks node id for the sandboxes it holds, by ID.
func (s *Service) nodeSandboxes(ctx context.Context, id string) (map[string]*agentv1.SandboxStatus, error) {
	node, err := s.nodeOf(ctx, id)
	if err != nil {
		return nil, err
	}
	nctx, cancel := context.WithTimeout(ctx, s.cfg.NodeTimeout)
	defer cancel()
	resp, err := node.ListSandboxes(nctx, connect.NewRequest(&agentv1.ListSandboxesRequest{}))
	if err != nil {
		return nil, err
	}
	onNode := make(map[string]*agentv1.SandboxStatus, len(resp.Msg.GetSandboxes()))
	for _, st := range resp.Msg.GetSandboxes() {
		onNode[st.GetSandboxId()] = st
	}
	return onNode, nil
}

// holdStuck takes the locks of the sandboxes of due (ID: version) that are
// free at once and whose record is still the one seen.
func (s *Service) holdStuck(ctx context.Context, due map[string]int64) []stuck {
	var held []stuck
	for id, version := range due {
		unlock, ok, err := s.locks.tryLock(ctx, id)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("repair: lock sandbox", "sandbox", id, "err", err)
			}
			continue
		}
		if !ok {
			s.log.Debug("repair: sandbox busy, left alone", "sandbox", id)
			continue
		}
		sb, err := s.store.GetSandbox(ctx, id)
		if err != nil || sb.Version != version {
			unlock()
			if err != nil && !errors.Is(err, store.ErrNotFound) && ctx.Err() == nil {
				s.log.Error("repair: read sandbox", "sandbox", id, "err", err)
			}
			continue
		}
		held = append(held, stuck{sb: sb, unlock: unlock})
	}
	return held
}

// repairLocked moves stuck sandbox sb to the state the node reports (st,
// nil when the node does not hold it). The caller holds sb's lock.
func (s *Service) repairLocked(ctx context.Context, sb *store.Sandbox, st *agentv1.SandboxStatus, bound time.Duration) error {
	was := sb.State
	var now string
	switch {
	case st == nil:
		s.markDead(ctx, sb, fmt.Sprintf("lost by the node (was %s for more than %s)", was, bound))
		now = StateDead
	case st.GetState() == agentv1.SandboxState_SANDBOX_STATE_RUNNING:
		sb.State = StateRunning
		sb.Address = st.GetAddress()
		if end := s.now().Add(s.cfg.DefaultTimeout); was == StateResuming && sb.EndAt.Before(end) {
			// The resume's own end time was never recorded.
			sb.EndAt = end
		}
		now = StateRunning
	case st.GetState() == agentv1.SandboxState_SANDBOX_STATE_PAUSED:
		s.setPaused(sb)
		now = StatePaused
	case st.GetState() == agentv1.SandboxState_SANDBOX_STATE_DEAD:
		reason := st.GetReason()
		if reason == "" {
			reason = "dead on node"
		}
		s.markDead(ctx, sb, reason)
		now = StateDead
	default:
		return fmt.Errorf("node reports sandbox %s in state %s", sb.ID, st.GetState())
	}
	if now != StateDead {
		if err := s.save(ctx, sb); err != nil {
			return err
		}
	}
	s.event(ctx, sb.ID, "state repaired: %s for more than %s with no operation on it; the node says %s", was, bound, now)
	s.log.Warn("repaired sandbox stuck in a transitional state", "sandbox", sb.ID, "was", was, "now", now)
	return nil
}
