package controlplane

import (
	"context"
	"errors"
	"testing"
	"time"

	"connectrpc.com/connect"

	"lelantos.dev/lelantos/internal/controlplane/controlplanetest"
	"lelantos.dev/lelantos/internal/store"
)

// TestFork: each fork is a new running sandbox of the team with the source's
// settings, new tokens and its own end time; the source runs on unchanged.
func TestFork(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	src := h.create(t, CreateRequest{TemplateID: "big", Timeout: time.Hour, Metadata: map[string]string{"k": "v"},
		EnvVars: map[string]string{"E": "1"}, AutoPause: true, AllowPublicTraffic: ptr(false)})
	h.clock.Advance(time.Minute)
	results, err := h.svc.Fork(ctx, defTeam, src.ID, ForkRequest{Count: 3, Timeout: 10 * time.Minute})
	if err != nil {
		t.Fatalf("fork: %v", err)
	}
	if len(results) != 3 {
		t.Fatalf("%d results, want 3", len(results))
	}
	seen := map[string]bool{src.ID: true}
	for i, r := range results {
		if r.Err != nil {
			t.Fatalf("fork %d: %v", i, r.Err)
		}
		f := r.Sandbox
		if seen[f.ID] || f.EnvdAccessToken == src.EnvdAccessToken || f.TrafficAccessToken == "" ||
			f.TrafficAccessToken == src.TrafficAccessToken {
			t.Errorf("fork %d shares an ID or token with the source or another fork: %+v", i, f)
		}
		seen[f.ID] = true
		stored := h.stored(t, f.ID)
		if stored == nil || stored.State != StateRunning || stored.Address == "" || stored.TemplateID != "big" ||
			stored.CPUCount != 4 || stored.Metadata["k"] != "v" || stored.EnvVars["E"] != "1" || !stored.AutoPause ||
			stored.TeamID != defTeam {
			t.Errorf("stored fork %d: %+v", i, stored)
		}
		if want := h.clock.Now().Add(10 * time.Minute); !stored.EndAt.Equal(want) {
			t.Errorf("fork %d ends at %v, want %v", i, stored.EndAt, want)
		}
		if sp := h.node.SpecOf(f.ID); sp == nil || sp.GetEnvdAccessToken() != f.EnvdAccessToken {
			t.Errorf("the node's fork %d does not have its token: %+v", i, sp)
		}
	}
	after := h.stored(t, src.ID)
	if after.State != StateRunning || !after.EndAt.Equal(src.EndAt) || after.Address != src.Address {
		t.Errorf("source after the fork: %+v (was %+v)", after, src)
	}
	if n := h.node.Calls(controlplanetest.OpFork); n != 1 {
		t.Errorf("%d fork calls to the node, want one for all forks", n)
	}
}

// TestForkRefusals: bad requests and sources that cannot be forked change nothing.
func TestForkRefusals(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	running := h.create(t, CreateRequest{})
	paused := h.create(t, CreateRequest{})
	if err := h.svc.Pause(ctx, defTeam, paused.ID); err != nil {
		t.Fatal(err)
	}
	other := newTeam(t, h, "beta", store.QuotaSettings{})
	tests := []struct {
		name, team, id string
		req            ForkRequest
		want           error
	}{
		{"count 0", defTeam, running.ID, ForkRequest{Count: 0}, ErrInvalidArgument},
		{"count 101", defTeam, running.ID, ForkRequest{Count: 101}, ErrInvalidArgument},
		{"timeout too long", defTeam, running.ID, ForkRequest{Count: 1, Timeout: 48 * time.Hour}, ErrInvalidArgument},
		{"paused source", defTeam, paused.ID, ForkRequest{Count: 1}, ErrConflict},
		{"unknown source", defTeam, "nosuchsandbox", ForkRequest{Count: 1}, ErrNotFound},
		{"another team's source", other.ID, running.ID, ForkRequest{Count: 1}, ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.node.Len()
			res, err := h.svc.Fork(ctx, tt.team, tt.id, tt.req)
			if !errors.Is(err, tt.want) || res != nil {
				t.Fatalf("got %v, %v; want %v", res, err, tt.want)
			}
			if h.node.Len() != before {
				t.Errorf("a refused fork made sandboxes on the node")
			}
		})
	}
}

// TestForkAdmission: forks past the team's quota and past the node's room fail
// one by one, each with its kind; the others are made, and the failed ones leave
// no record. A node that refuses the whole fork fails it with its kind.
func TestForkAdmission(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	three := 3
	team := newTeam(t, h, "gamma", store.QuotaSettings{MaxSandboxes: &three})
	src, err := h.svc.Create(ctx, team.ID, CreateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// The team has room for two more; the node for one of them.
	h.node.LimitForks(1)
	res, err := h.svc.Fork(ctx, team.ID, src.ID, ForkRequest{Count: 4})
	if err != nil {
		t.Fatal(err)
	}
	kinds := []error{nil, ErrUnavailable, ErrQuota, ErrQuota}
	for i, want := range kinds {
		switch {
		case want == nil && (res[i].Err != nil || res[i].Sandbox == nil):
			t.Errorf("fork %d: %+v, want a sandbox", i, res[i])
		case want != nil && (!errors.Is(res[i].Err, want) || res[i].Sandbox != nil):
			t.Errorf("fork %d: %+v, want %v", i, res[i], want)
		}
	}
	list, _, err := h.db.ListSandboxes(ctx, store.SandboxFilter{TeamID: team.ID})
	if err != nil || len(list) != 2 {
		t.Errorf("the team has %d sandboxes stored (%v), want the source and one fork", len(list), err)
	}

	h.node.LimitForks(-1)
	h.node.Fail(controlplanetest.OpFork, connect.NewError(connect.CodeResourceExhausted, errors.New("node full")))
	if _, err := h.svc.Fork(ctx, team.ID, src.ID, ForkRequest{Count: 1}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("fork refused by the node: %v, want ErrUnavailable", err)
	}
	if list, _, _ := h.db.ListSandboxes(ctx, store.SandboxFilter{TeamID: team.ID}); len(list) != 2 {
		t.Errorf("a refused fork left %d records, want 2", len(list))
	}
	h.node.Fail(controlplanetest.OpFork, connect.NewError(connect.CodeNotFound, errors.New("no such sandbox")))
	if _, err := h.svc.Fork(ctx, team.ID, src.ID, ForkRequest{Count: 1}); !errors.Is(err, ErrNotFound) {
		t.Errorf("fork of a sandbox the node lost: %v, want ErrNotFound", err)
	}
	if st := h.stored(t, src.ID); st == nil || st.State != StateDead {
		t.Errorf("a source the node lost is %+v, want dead", st)
	}
}
