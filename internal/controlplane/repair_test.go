package controlplane

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"lelantos.dev/lelantos/internal/controlplane/controlplanetest"
	agentv1 "lelantos.dev/lelantos/internal/gen/agent/v1"
)

// stage makes a running sandbox, then sets its stored state (as a node call
// that never answered leaves it) and what the node holds (nil: nothing).
func stage(t *testing.T, h *harness, stored string, node *agentv1.SandboxStatus) string {
	t.Helper()
	sb := h.create(t, CreateRequest{Timeout: time.Hour})
	row := h.stored(t, sb.ID)
	row.State = stored
	if err := h.db.UpdateSandbox(context.Background(), row); err != nil {
		t.Fatal(err)
	}
	h.node.Remove(sb.ID)
	if node != nil {
		node.SandboxId = sb.ID
		h.node.Put(node)
	}
	return sb.ID
}

func TestRepairStuckSandboxes(t *testing.T) {
	ctx := context.Background()
	running := func(addr string) *agentv1.SandboxStatus {
		return &agentv1.SandboxStatus{State: agentv1.SandboxState_SANDBOX_STATE_RUNNING, Address: addr}
	}
	paused := &agentv1.SandboxStatus{State: agentv1.SandboxState_SANDBOX_STATE_PAUSED}
	tests := []struct {
		name       string
		stored     string
		node       *agentv1.SandboxStatus
		hold       bool          // an operation holds the sandbox's lock
		wait       time.Duration // between the two passes
		wantState  string
		wantReason string
		wantAddr   string
	}{
		{name: "starting, running on the node", stored: StateStarting, node: running("10.9.0.2"), wait: 5 * time.Minute,
			wantState: StateRunning, wantAddr: "10.9.0.2"},
		{name: "pausing, paused on the node", stored: StatePausing, node: paused, wait: 5 * time.Minute, wantState: StatePaused},
		{name: "pausing, still running on the node", stored: StatePausing, node: running("10.9.0.3"), wait: 5 * time.Minute,
			wantState: StateRunning, wantAddr: "10.9.0.3"},
		{name: "resuming, not on the node", stored: StateResuming, wait: 5 * time.Minute,
			wantState: StateDead, wantReason: "lost by the node"},
		{name: "resuming, dead on the node", stored: StateResuming, wait: 5 * time.Minute, wantState: StateDead, wantReason: "out of memory",
			node: &agentv1.SandboxStatus{State: agentv1.SandboxState_SANDBOX_STATE_DEAD, Reason: "out of memory"}},
		{name: "held by a live operation", stored: StatePausing, node: paused, hold: true, wait: time.Hour, wantState: StatePausing},
		{name: "not stuck for long enough", stored: StateStarting, node: running("10.9.0.4"), wait: 3 * time.Minute,
			wantState: StateStarting},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t) // NodeTimeout 2 min: stuck after 4 min
			id := stage(t, h, tt.stored, tt.node)
			if tt.hold {
				unlock, err := h.svc.lock(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				defer unlock()
			}
			staged := h.stored(t, id)
			rep := newRepairer()
			h.svc.repairOnce(ctx, rep)
			if got := h.stored(t, id); got.State != tt.stored {
				t.Fatalf("first pass changed the sandbox: %+v", got)
			}
			h.clock.Advance(tt.wait)
			h.svc.repairOnce(ctx, rep)

			got := h.stored(t, id)
			if tt.wantState == tt.stored {
				if got.Version != staged.Version {
					t.Fatalf("sandbox left alone changed: %+v, was %+v", got, staged)
				}
			} else if got.State != tt.wantState || !strings.Contains(got.EndReason, tt.wantReason) || got.Address != tt.wantAddr {
				t.Fatalf("stored state %s reason %q address %q, want %s ~%q %q", got.State, got.EndReason, got.Address,
					tt.wantState, tt.wantReason, tt.wantAddr)
			}
			lines, err := h.svc.Logs(ctx, defTeam, id, LogQuery{Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			repaired := strings.Contains(lines[len(lines)-1].Message, "state repaired")
			if repaired != (tt.wantState != tt.stored) {
				t.Errorf("last log line %q; repaired %v", lines[len(lines)-1].Message, repaired)
			}
			if tt.wantState == StateRunning {
				if _, err := h.svc.Get(ctx, defTeam, id); err != nil {
					t.Errorf("get after the repair: %v", err)
				}
				if err := h.svc.Kill(ctx, defTeam, id); err != nil {
					t.Errorf("kill after the repair: %v", err)
				}
			}
		})
	}
}

// TestRepairWaitsForAChange: a sandbox whose record changed between passes
// starts its wait again.
func TestRepairWaitsForAChange(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	id := stage(t, h, StatePausing, &agentv1.SandboxStatus{State: agentv1.SandboxState_SANDBOX_STATE_PAUSED})
	rep := newRepairer()
	h.svc.repairOnce(ctx, rep)
	h.clock.Advance(3 * time.Minute)
	row := h.stored(t, id)
	if err := h.db.UpdateSandbox(ctx, row); err != nil { // an operation moved it on
		t.Fatal(err)
	}
	h.svc.repairOnce(ctx, rep)
	h.clock.Advance(3 * time.Minute)
	h.svc.repairOnce(ctx, rep)
	if got := h.stored(t, id); got.State != StatePausing {
		t.Fatalf("repaired %s after 3 minutes unchanged: %+v", id, got)
	}
	h.clock.Advance(time.Minute)
	h.svc.repairOnce(ctx, rep)
	if got := h.stored(t, id); got.State != StatePaused {
		t.Fatalf("not repaired after 4 minutes unchanged: %+v", got)
	}
	// An unreachable node repairs nothing.
	id2 := stage(t, h, StateResuming, nil)
	h.svc.repairOnce(ctx, rep)
	h.clock.Advance(5 * time.Minute)
	h.node.Fail(controlplanetest.OpList, connect.NewError(connect.CodeUnavailable, errors.New("node down")))
	h.svc.repairOnce(ctx, rep)
	if got := h.stored(t, id2); got.State != StateResuming {
		t.Fatalf("repaired without the node's word: %+v", got)
	}
	h.node.Fail(controlplanetest.OpList, nil)
	h.svc.repairOnce(ctx, rep)
	if got := h.stored(t, id2); got.State != StateDead {
		t.Fatalf("not repaired once the node answers: %+v", got)
	}
	if n := h.svc.locks.size(); n != 0 {
		t.Errorf("%d sandbox locks left behind", n)
	}
}

// TestHungPauseIsRepaired: a pause the node does not answer within
// NodeTimeout is a 503 and leaves the sandbox pausing (the node may still
// finish); the repair then takes the node's word.
func TestHungPauseIsRepaired(t *testing.T) {
	ctx := context.Background()
	h := newTunedHarness(t, func(c *Config) { c.NodeTimeout = 50 * time.Millisecond })
	sb := h.create(t, CreateRequest{Timeout: time.Hour})
	h.node.SetDelay(time.Second)
	err := h.svc.Pause(ctx, defTeam, sb.ID)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "no answer in time") {
		t.Fatalf("pause on a hung node: %v, want unavailable", err)
	}
	if got := h.stored(t, sb.ID); got.State != StatePausing {
		t.Fatalf("after the hung pause: %+v, want pausing", got)
	}
	h.node.SetDelay(0)
	rep := newRepairer()
	h.svc.repairOnce(ctx, rep)
	h.clock.Advance(time.Minute)
	h.svc.repairOnce(ctx, rep)
	// The fake node gave the pause up: the sandbox is running after all.
	if got := h.stored(t, sb.ID); got.State != StateRunning || got.Address == "" {
		t.Fatalf("after the repair: %+v, want running", got)
	}
	if err := h.svc.Pause(ctx, defTeam, sb.ID); err != nil {
		t.Errorf("pause after the repair: %v", err)
	}
}
