package controlplane

import (
	"context"
	"slices"
	"sync"
	"testing"

	"lelantos.dev/lelantos/internal/controlplane/controlplanetest"
)

// fakeKeeper keeps names of images and snapshots it was asked to copy.
type fakeKeeper struct {
	mu      sync.Mutex
	kept    []string
	dropped []string
}

func (k *fakeKeeper) KeepImage(_ context.Context, id, _, sandboxID string) (string, error) {
	return k.keep("image-" + id + "-" + sandboxID), nil
}

func (k *fakeKeeper) KeepSnapshot(_ context.Context, id, _, snapshotID string) (string, error) {
	return k.keep("snapshot-" + id + "-" + snapshotID), nil
}

func (k *fakeKeeper) keep(what string) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	name := "sha256:" + what
	k.kept = append(k.kept, name)
	return name
}

func (k *fakeKeeper) DropImage(_ context.Context, name string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.dropped = append(k.dropped, name)
	return nil
}

// TestForkAcrossNodes: forks that do not fit on their source's node (it
// drains, or its free memory is short) start on other nodes from one
// snapshot of the source, copied by the control plane; the snapshot and the
// copy are gone afterwards, and the source runs on.
func TestForkAcrossNodes(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name       string
		memA       int64 // node-a's limit, MB; the source (512 MB) runs there
		drainA     bool
		keeper     bool
		count      int
		wantOn     []string // node of each fork
		wantForkRP int      // ForkSandbox calls to node-a
		wantErr    bool
	}{
		{name: "room for all: one fork call in place", memA: 4096, keeper: true, count: 2,
			wantOn: []string{"node-a", "node-a"}, wantForkRP: 1},
		{name: "draining source node: all on the other", memA: 4096, drainA: true, keeper: true, count: 3,
			wantOn: []string{"node-b", "node-b", "node-b"}},
		{name: "room for one: the first there, the rest elsewhere", memA: 1024, keeper: true, count: 3,
			wantOn: []string{"node-a", "node-b", "node-b"}},
		{name: "no copy of images: a draining node refuses", memA: 4096, drainA: true, count: 1, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			keeper := &fakeKeeper{}
			h, remote := placementHarness(t, tc.memA, 8192, func(c *Config) {
				if tc.keeper {
					c.Images = keeper
				}
			})
			if err := h.svc.SetNodeStatus(ctx, "node-b", NodeDraining); err != nil {
				t.Fatal(err)
			}
			src := h.create(t, CreateRequest{})
			if src.NodeID != "node-a" {
				t.Fatalf("source on %s, want node-a", src.NodeID)
			}
			if err := h.svc.SetNodeStatus(ctx, "node-b", NodeReady); err != nil {
				t.Fatal(err)
			}
			if tc.drainA {
				if err := h.svc.SetNodeStatus(ctx, "node-a", NodeDraining); err != nil {
					t.Fatal(err)
				}
			}
			results, err := h.svc.Fork(ctx, defTeam, src.ID, ForkRequest{Count: tc.count})
			if tc.wantErr {
				if err == nil {
					t.Fatalf("fork from a draining node with nowhere to copy its image: %+v, want an error", results)
				}
				return
			}
			if err != nil {
				t.Fatalf("fork: %v", err)
			}
			var on []string
			for i, r := range results {
				if r.Err != nil {
					t.Fatalf("fork %d: %v", i, r.Err)
				}
				stored := h.stored(t, r.Sandbox.ID)
				if stored.State != StateRunning || stored.NodeID != r.Sandbox.NodeID {
					t.Errorf("fork %d stored as %s on %s, answered on %s", i, stored.State, stored.NodeID, r.Sandbox.NodeID)
				}
				node := remote[stored.NodeID]
				sp := node.SpecOf(stored.ID)
				if sp == nil || sp.GetEnvdAccessToken() != stored.EnvdAccessToken {
					t.Errorf("fork %d: node %s holds %+v", i, stored.NodeID, sp)
				}
				if tc.wantForkRP == 0 {
					if stored.NodeID == "node-a" && sp.GetSnapshotId() == "" {
						t.Errorf("fork %d on the source's node did not start from the snapshot: %+v", i, sp)
					}
					if stored.NodeID != "node-a" && !slices.Contains(keeper.kept, sp.GetSnapshotArtifact()) {
						t.Errorf("fork %d on %s did not start from the kept copy %v: %+v", i, stored.NodeID, keeper.kept, sp)
					}
				}
				on = append(on, stored.NodeID)
			}
			if !slices.Equal(on, tc.wantOn) {
				t.Errorf("forks on %v, want %v", on, tc.wantOn)
			}
			if n := remote["node-a"].Calls(controlplanetest.OpFork); n != tc.wantForkRP {
				t.Errorf("%d ForkSandbox calls, want %d", n, tc.wantForkRP)
			}
			if left := remote["node-a"].Snapshots(); len(left) != 0 {
				t.Errorf("the fork's snapshot is left on the source's node: %v", left)
			}
			if !slices.Equal(keeper.kept, keeper.dropped) {
				t.Errorf("copies kept %v, dropped %v: want every copy dropped", keeper.kept, keeper.dropped)
			}
			if after := h.stored(t, src.ID); after.State != StateRunning || after.NodeID != "node-a" {
				t.Errorf("source after the fork: %s on %s", after.State, after.NodeID)
			}
		})
	}
}
