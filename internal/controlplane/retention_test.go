package controlplane

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"lelantos.dev/lelantos/internal/controlplane/controlplanetest"
)

const day = 24 * time.Hour

// TestPausedRetention: a sandbox paused for longer than PausedRetention is
// killed on the node and its record kept as killed with the reason, readable
// in its log until DeadRetention drops it.
func TestPausedRetention(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name      string
		retention time.Duration // 0: the default
		// before runs after the pause, before time passes.
		before   func(h *harness, id string) error
		wait     time.Duration
		wantGone bool
		reason   string
	}{
		{name: "default, past 30 days", wait: 30*day + time.Second, wantGone: true, reason: "paused for more than 30 days: removed"},
		{name: "default, within 30 days", wait: 30*day - time.Second},
		{name: "set retention", retention: 2 * time.Hour, wait: 2*time.Hour + time.Second, wantGone: true,
			reason: "paused for more than 2h0m0s: removed"},
		{name: "forever", retention: PausedForever, wait: 3650 * day},
		{name: "paused again counts from the last pause", wait: 29 * day, before: func(h *harness, id string) error {
			h.clock.Advance(29 * day)
			if _, err := h.svc.Resume(ctx, defTeam, id, ResumeRequest{}); err != nil {
				return err
			}
			return h.svc.Pause(ctx, defTeam, id)
		}},
		{name: "timeout set while paused counts from its end", wait: 30*day + time.Hour, before: func(h *harness, id string) error {
			return h.svc.SetTimeout(ctx, defTeam, id, 2*time.Hour)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTunedHarness(t, func(c *Config) { c.PausedRetention = tt.retention })
			// An hour of its timeout is left when it is paused: the
			// retention counts from the pause, not from that end time.
			sb := h.create(t, CreateRequest{Timeout: 2 * time.Hour})
			h.clock.Advance(time.Hour)
			if err := h.svc.Pause(ctx, defTeam, sb.ID); err != nil {
				t.Fatal(err)
			}
			if tt.before != nil {
				if err := tt.before(h, sb.ID); err != nil {
					t.Fatal(err)
				}
			}
			h.clock.Advance(tt.wait)
			h.svc.reapOnce(ctx)

			_, onNode := h.node.State(sb.ID)
			got := h.stored(t, sb.ID)
			if !tt.wantGone {
				if !onNode || got == nil || got.State == StateKilled {
					t.Fatalf("kept sandbox: on node %v, stored %+v", onNode, got)
				}
				return
			}
			if onNode {
				t.Errorf("expired sandbox (and its checkpoint) still on the node")
			}
			if got == nil || got.State != StateKilled || got.EndReason != tt.reason || !got.EndAt.Equal(h.clock.Now()) {
				t.Fatalf("stored %+v, want killed with reason %q", got, tt.reason)
			}
			if _, err := h.svc.Get(ctx, defTeam, sb.ID); !errors.Is(err, ErrNotFound) {
				t.Errorf("get of the expired sandbox: %v, want not found", err)
			}
			if items, _, _ := h.svc.List(ctx, defTeam, ListRequest{States: []string{StatePaused}}); len(items) != 0 {
				t.Errorf("expired sandbox listed: %v", items)
			}
			if _, err := h.svc.Resume(ctx, defTeam, sb.ID, ResumeRequest{}); !errors.Is(err, ErrNotFound) {
				t.Errorf("resume of the expired sandbox: %v, want not found", err)
			}
			lines, err := h.svc.Logs(ctx, defTeam, sb.ID, LogQuery{Limit: 100})
			if err != nil || len(lines) == 0 || lines[len(lines)-1].Message != tt.reason {
				t.Errorf("log of the expired sandbox: %v %v, want it to end with %q", lines, err, tt.reason)
			}
			// A restart keeps the record; DeadRetention drops it.
			h.db.Close()
			h.open(t)
			if err := h.svc.Reconcile(ctx); err != nil {
				t.Fatal(err)
			}
			if got := h.stored(t, sb.ID); got == nil || got.State != StateKilled {
				t.Fatalf("after a restart: %+v, want the killed record", got)
			}
			h.clock.Advance(time.Hour - time.Second)
			h.svc.prune(ctx)
			if h.stored(t, sb.ID) == nil {
				t.Fatalf("killed record dropped before DeadRetention")
			}
			h.clock.Advance(time.Second)
			h.svc.prune(ctx)
			if h.stored(t, sb.ID) != nil {
				t.Errorf("killed record kept past DeadRetention")
			}
		})
	}
}

// TestPausedRetentionPages: more expired sandboxes than one page of the
// reaper's query all go in one pass, and a kill the node refuses is retried
// at the next pass.
func TestPausedRetentionPages(t *testing.T) {
	ctx := context.Background()
	h := newTunedHarness(t, func(c *Config) { c.PausedRetention = time.Hour })
	const n = 2*duePage + 7
	ids := make([]string, 0, n)
	for range n {
		sb := h.create(t, CreateRequest{})
		if err := h.svc.Pause(ctx, defTeam, sb.ID); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, sb.ID)
	}
	keep := h.create(t, CreateRequest{Timeout: 24 * time.Hour})
	h.clock.Advance(2 * time.Hour)

	h.node.Fail(controlplanetest.OpKill, connect.NewError(connect.CodeUnavailable, errors.New("node down")))
	h.svc.reapOnce(ctx)
	for _, id := range ids {
		if got := h.stored(t, id); got == nil || got.State != StatePaused {
			t.Fatalf("%s after a refused kill: %+v, want still paused", id, got)
		}
	}
	h.node.Fail(controlplanetest.OpKill, nil)
	h.svc.reapOnce(ctx)
	for _, id := range ids {
		if got := h.stored(t, id); got == nil || got.State != StateKilled {
			t.Fatalf("%s: %+v, want killed", id, got)
		}
	}
	if got := h.node.Len(); got != 1 {
		t.Errorf("node holds %d sandboxes, want only the running one", got)
	}
	if got := h.stored(t, keep.ID); got == nil || got.State != StateRunning {
		t.Errorf("running sandbox touched: %+v", got)
	}
}

func TestPausedRetentionConfig(t *testing.T) {
	for _, tt := range []struct {
		retention time.Duration
		ok        bool
	}{{0, true}, {time.Hour, true}, {PausedForever, true}, {-2 * time.Hour, false}} {
		_, err := New(Config{PausedRetention: tt.retention}, newHarness(t).db, controlplanetest.NewNode())
		if (err == nil) != tt.ok || (err != nil && !strings.Contains(err.Error(), "PausedRetention")) {
			t.Errorf("PausedRetention %v: err %v, want ok=%v", tt.retention, err, tt.ok)
		}
	}
}
