package controlplane

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"

	agentv1 "lelantos.dev/lelantos/internal/gen/agent/v1"
	"lelantos.dev/lelantos/internal/store"
)

// Reconcile makes the stored state agree with every node after a restart
// (see ReconcileNode). Its own node must answer; a remote node that does not
// is left as it is, and reconciled when it reports again. Call it before
// serving requests.
func (s *Service) Reconcile(ctx context.Context) error {
	ids, err := s.nodeIDs(ctx)
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	for _, id := range ids {
		err := s.ReconcileNode(ctx, id)
		switch {
		case err != nil && id == LocalNodeID:
			return err
		case err != nil:
			s.log.Warn("reconcile: node not reached; it is reconciled when it reports", "node", id, "err", err)
		}
	}
	return nil
}

// ReconcileNode makes the stored state of node id's sandboxes agree with
// the node: a stored sandbox the node does not hold is dead (so it leaves
// listings); one in a transitional state (starting, pausing, resuming)
// takes the state the node reports; a sandbox the node holds but the store
// does not know, or knows on another node (it moved while this one was out
// of reach), is killed here. Overdue sandboxes are left to the reaper.
func (s *Service) ReconcileNode(ctx context.Context, id string) error {
	node, err := s.nodeOf(ctx, id)
	if err != nil {
		return fmt.Errorf("reconcile node %s: %w", id, err)
	}
	nodeID := id
	// The store's records of the node as they were before its list was
	// asked for: one stored or changed after that (a create under way) is
	// newer than the list, which says nothing of it.
	before := make(map[string]int64)
	err = s.forEach(ctx, store.SandboxFilter{}, func(sb *store.Sandbox) error {
		if sb.NodeID == nodeID {
			before[sb.ID] = sb.Version
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reconcile node %s: %w", nodeID, err)
	}
	resp, err := node.ListSandboxes(ctx, connect.NewRequest(&agentv1.ListSandboxesRequest{}))
	if err != nil {
		return fmt.Errorf("reconcile node %s: list its sandboxes: %w", id, err)
	}
	onNode := make(map[string]*agentv1.SandboxStatus, len(resp.Msg.GetSandboxes()))
	for _, st := range resp.Msg.GetSandboxes() {
		onNode[st.GetSandboxId()] = st
	}
	for sbID, version := range before {
		if err := s.reconcileOne(ctx, sbID, version, onNode[sbID]); err != nil {
			return fmt.Errorf("reconcile node %s: reconcile sandbox %s: %w", nodeID, sbID, err)
		}
	}
	for id := range onNode {
		sb, err := s.store.GetSandbox(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			s.log.Warn("reconcile: killing sandbox unknown to the store", "sandbox", id)
			s.bestEffortKill(ctx, nodeID, id)
		case err == nil && sb.NodeID != nodeID:
			// It resumed on another node while this one was out of reach.
			s.log.Info("reconcile: removing a sandbox that moved to another node", "sandbox", id, "node", nodeID, "now on", sb.NodeID)
			s.bestEffortKill(ctx, nodeID, id)
		case err != nil:
			return fmt.Errorf("reconcile node %s: read sandbox %s: %w", nodeID, id, err)
		}
	}
	return nil
}

// reconcileOne fixes one stored sandbox given the node's status (nil when
// the node does not hold it), taken when the record was at version; a
// record changed since is left as it is.
func (s *Service) reconcileOne(ctx context.Context, id string, version int64, st *agentv1.SandboxStatus) error {
	// Most sandboxes agree with the node: those need no lock (a store lease
	// each, at every start).
	if sb, err := s.store.GetSandbox(ctx, id); err != nil || sb.Version != version || settled(sb, st) {
		return nil
	}
	unlock, err := s.lock(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	sb, err := s.store.GetSandbox(ctx, id)
	if err != nil || sb.Version != version {
		return nil // gone or changed meanwhile
	}
	switch {
	case sb.State == StateDead:
		return nil // the node's leftovers go when prune drops the record
	case sb.State == StateKilled:
		if st == nil {
			return nil // the record goes when prune drops it
		}
		return s.nodeKill(ctx, sb.NodeID, id) // a kill the restart interrupted
	case st == nil:
		s.markDead(ctx, sb, fmt.Sprintf("lost: not on node %s after restart (was %s)", sb.NodeID, sb.State))
		return nil
	}
	switch st.GetState() {
	case agentv1.SandboxState_SANDBOX_STATE_RUNNING:
		if sb.State == StateRunning && sb.Address == st.GetAddress() {
			return nil
		}
		sb.State = StateRunning
		sb.Address = st.GetAddress()
	case agentv1.SandboxState_SANDBOX_STATE_PAUSED:
		if sb.State == StatePaused {
			return nil
		}
		s.setPaused(sb)
	default:
		reason := st.GetReason()
		if reason == "" {
			reason = "dead on node"
		}
		s.markDead(ctx, sb, reason)
		return nil
	}
	if err := s.save(ctx, sb); err != nil {
		return err
	}
	s.event(ctx, id, "state reconciled with node after restart: %s", sb.State)
	return nil
}

// settled reports a stored sandbox that agrees with the node's status (nil
// when the node does not hold it), which reconcileOne leaves as it is.
func settled(sb *store.Sandbox, st *agentv1.SandboxStatus) bool {
	switch {
	case sb.State == StateDead:
		return true
	case sb.State == StateKilled || st == nil:
		return sb.State == StateKilled && st == nil
	case st.GetState() == agentv1.SandboxState_SANDBOX_STATE_RUNNING:
		return sb.State == StateRunning && sb.Address == st.GetAddress()
	case st.GetState() == agentv1.SandboxState_SANDBOX_STATE_PAUSED:
		return sb.State == StatePaused
	}
	return false
}
