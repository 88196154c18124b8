package controlplane

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	agentv1 "lelantos.dev/lelantos/internal/gen/agent/v1"
)

func TestReconcileAfterRestart(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	keep := h.create(t, CreateRequest{})
	lost := h.create(t, CreateRequest{})
	lostPaused := h.create(t, CreateRequest{})
	pausedOnNode := h.create(t, CreateRequest{}) // stored "pausing": crashed mid-pause
	runningOnNode := h.create(t, CreateRequest{})
	deadOnNode := h.create(t, CreateRequest{})
	overdue := h.create(t, CreateRequest{Timeout: time.Minute})
	if err := h.svc.Pause(ctx, defTeam, lostPaused.ID); err != nil {
		t.Fatal(err)
	}
	// Simulate a crash in the middle of pause and resume.
	for id, state := range map[string]string{pausedOnNode.ID: StatePausing, runningOnNode.ID: StateResuming} {
		sb := h.stored(t, id)
		sb.State = state
		if err := h.db.UpdateSandbox(ctx, sb); err != nil {
			t.Fatal(err)
		}
	}
	h.node.Put(&agentv1.SandboxStatus{SandboxId: pausedOnNode.ID, State: agentv1.SandboxState_SANDBOX_STATE_PAUSED})
	h.node.Put(&agentv1.SandboxStatus{SandboxId: runningOnNode.ID, State: agentv1.SandboxState_SANDBOX_STATE_RUNNING, Address: "10.9.9.9"})
	h.node.Put(&agentv1.SandboxStatus{SandboxId: deadOnNode.ID, State: agentv1.SandboxState_SANDBOX_STATE_DEAD, Reason: "out of memory"})
	h.node.Remove(lost.ID)
	h.node.Remove(lostPaused.ID)
	h.node.Put(&agentv1.SandboxStatus{SandboxId: "orphanorphanorphan00", State: agentv1.SandboxState_SANDBOX_STATE_RUNNING})

	// Restart: a fresh Service on the same database file.
	h.db.Close()
	h.open(t)
	h.clock.Advance(2 * time.Minute)
	if err := h.svc.Reconcile(ctx); err != nil {
		t.Fatalf("reconcile: %v", err)
	}

	tests := []struct {
		name, id, wantState, wantReason string
	}{
		{"untouched", keep.ID, StateRunning, ""},
		{"lost running", lost.ID, StateDead, "lost"},
		{"lost paused", lostPaused.ID, StateDead, "lost"},
		{"pausing resolved to paused", pausedOnNode.ID, StatePaused, ""},
		{"resuming resolved to running", runningOnNode.ID, StateRunning, ""},
		{"dead on node", deadOnNode.ID, StateDead, "out of memory"},
	}
	for _, tt := range tests {
		got := h.stored(t, tt.id)
		if got == nil || got.State != tt.wantState || !strings.Contains(got.EndReason, tt.wantReason) {
			t.Errorf("%s: stored %+v, want state %s reason ~%q", tt.name, got, tt.wantState, tt.wantReason)
		}
	}
	if got := h.stored(t, runningOnNode.ID).Address; got != "10.9.9.9" {
		t.Errorf("resumed sandbox address %q, want the node's", got)
	}
	if _, ok := h.node.State("orphanorphanorphan00"); ok {
		t.Errorf("sandbox unknown to the store left on the node")
	}
	items, _, err := h.svc.List(ctx, defTeam, ListRequest{})
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, sb := range items {
		listed[sb.ID] = true
	}
	for _, id := range []string{lost.ID, lostPaused.ID, deadOnNode.ID} {
		if listed[id] {
			t.Errorf("dead sandbox %s still listed", id)
		}
		if _, err := h.svc.Get(ctx, defTeam, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("get dead %s: %v, want not found", id, err)
		}
	}
	if len(items) != 4 {
		t.Errorf("listed %d sandboxes, want 4", len(items))
	}
	// The reaper of the new Service picks up the overdue sandbox.
	h.svc.reapOnce(ctx)
	if h.stored(t, overdue.ID) != nil {
		t.Errorf("overdue sandbox not reaped after restart")
	}
	// Dead records go after their retention, with the node's leftovers.
	h.clock.Advance(2 * time.Hour)
	h.svc.prune(ctx)
	if h.stored(t, deadOnNode.ID) != nil || h.stored(t, lost.ID) != nil {
		t.Errorf("dead records kept past retention")
	}
	if _, ok := h.node.State(deadOnNode.ID); ok {
		t.Errorf("dead sandbox's leftovers kept on the node")
	}
}

// TestConcurrentMixedCalls runs 50 mixed lifecycle calls at once on one
// sandbox against a slow node: none may fail other than with a conflict or
// not found, the node must never see two overlapping calls for it, and the
// end state of store and node must agree.
func TestConcurrentMixedCalls(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	h.node.SetDelay(2 * time.Millisecond)
	for round := range 3 {
		sb := h.create(t, CreateRequest{})
		rng := rand.New(rand.NewPCG(uint64(round), 7))
		ops := []func() error{
			func() error { return h.svc.Pause(ctx, defTeam, sb.ID) },
			func() error { _, err := h.svc.Resume(ctx, defTeam, sb.ID, ResumeRequest{}); return err },
			func() error { _, _, err := h.svc.Connect(ctx, defTeam, sb.ID, time.Minute); return err },
			func() error { return h.svc.SetTimeout(ctx, defTeam, sb.ID, 10*time.Minute) },
			func() error { return h.svc.Refresh(ctx, defTeam, sb.ID, time.Minute) },
			func() error { _, err := h.svc.Get(ctx, defTeam, sb.ID); return err },
			func() error { _, err := h.svc.Metrics(ctx, defTeam, sb.ID, time.Time{}, time.Time{}); return err },
		}
		var wg sync.WaitGroup
		errs := make(chan error, 50)
		for i := range 50 {
			op := ops[rng.IntN(len(ops))]
			if round == 2 && i == 25 {
				op = func() error { return h.svc.Kill(ctx, defTeam, sb.ID) }
			}
			wg.Go(func() {
				if err := op(); err != nil && !errors.Is(err, ErrConflict) && !errors.Is(err, ErrNotFound) {
					errs <- fmt.Errorf("call %d: %w", i, err)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("round %d: %v", round, err)
		}
		stored := h.stored(t, sb.ID)
		nodeState, onNode := h.node.State(sb.ID)
		switch {
		case stored == nil && !onNode:
			// killed everywhere
		case stored != nil && stored.State == StateRunning && nodeState == agentv1.SandboxState_SANDBOX_STATE_RUNNING:
		case stored != nil && stored.State == StatePaused && nodeState == agentv1.SandboxState_SANDBOX_STATE_PAUSED:
		default:
			t.Errorf("round %d: stored %+v, node %v (held %v): inconsistent", round, stored, nodeState, onNode)
		}
		if round == 2 && (stored != nil || onNode) {
			t.Errorf("kill in the mix did not end the sandbox")
		}
	}
	if n := h.node.Overlaps(); n != 0 {
		t.Errorf("node saw %d overlapping calls on one sandbox", n)
	}
	if n := h.svc.locks.size(); n != 0 {
		t.Errorf("%d sandbox locks left behind", n)
	}
}
