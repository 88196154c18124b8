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
	"lelantos.dev/lelantos/internal/proxy"
)

// fakeRemote reaches fake nodes by ID.
type fakeRemote map[string]*controlplanetest.Node

func (r fakeRemote) Agent(id, _ string) (Node, error) {
	if n, ok := r[id]; ok {
		return n, nil
	}
	return nil, errors.New("no such node")
}

func (r fakeRemote) Tunnel(string, string) (proxy.Tunnel, error) {
	return nil, errors.New("no tunnels here")
}

// placementHarness is a harness whose Service runs no node of its own and
// reaches nodes a and b, which report memory limits of memA and memB MB.
func placementHarness(t *testing.T, memA, memB int64, tune ...func(*Config)) (*harness, fakeRemote) {
	t.Helper()
	remote := fakeRemote{"node-a": controlplanetest.NewNode(), "node-b": controlplanetest.NewNode()}
	h := newTunedHarness(t, func(c *Config) {
		c.Remote = remote
		for _, f := range tune {
			f(c)
		}
	})
	h.svc.node = nil
	for id, mem := range map[string]int64{"node-a": memA, "node-b": memB} {
		err := h.svc.NodeReported(context.Background(), id, id+".test:3902", &agentv1.NodeInfoResponse{LimitMemoryBytes: mem << 20})
		if err != nil {
			t.Fatal(err)
		}
	}
	return h, remote
}

// TestPlacement: creates go to the node with the most free memory (what its
// limit leaves after the live sandboxes the store places there), move on
// when a node is full, and find no node when all are draining.
func TestPlacement(t *testing.T) {
	ctx := context.Background()
	t.Run("most free memory first, counting the store's sandboxes", func(t *testing.T) {
		h, _ := placementHarness(t, 2048, 1024)
		var on []string
		for range 4 {
			on = append(on, h.create(t, CreateRequest{}).NodeID)
		}
		// 512 MB each: a has 2048 free, then 1536; b 1024, then 512.
		want := []string{"node-a", "node-a", "node-a", "node-b"}
		if strings.Join(on, ",") != strings.Join(want, ",") && strings.Join(on, ",") != "node-a,node-a,node-b,node-a" {
			t.Fatalf("placed on %v, want %v (or a, a, b, a: ties go either way)", on, want)
		}
	})
	t.Run("a full node passes the sandbox on", func(t *testing.T) {
		h, remote := placementHarness(t, 4096, 1024)
		remote["node-a"].Fail(controlplanetest.OpCreate, connect.NewError(connect.CodeResourceExhausted, errors.New("node full")))
		sb := h.create(t, CreateRequest{})
		if sb.NodeID != "node-b" || h.stored(t, sb.ID).NodeID != "node-b" {
			t.Fatalf("placed on %s (stored %s), want node-b after node-a refused", sb.NodeID, h.stored(t, sb.ID).NodeID)
		}
		if _, ok := remote["node-b"].State(sb.ID); !ok {
			t.Fatal("node-b does not hold the sandbox")
		}
	})
	t.Run("a refusal of the request is not retried elsewhere", func(t *testing.T) {
		h, remote := placementHarness(t, 4096, 1024)
		remote["node-a"].Fail(controlplanetest.OpCreate, connect.NewError(connect.CodeInvalidArgument, errors.New("bad spec")))
		if _, err := h.svc.Create(ctx, defTeam, CreateRequest{}); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("create = %v, want the node's invalid argument", err)
		}
		if n := remote["node-b"].Calls(controlplanetest.OpCreate); n != 0 {
			t.Fatalf("node-b was asked %d times", n)
		}
	})
	t.Run("only draining nodes", func(t *testing.T) {
		h, _ := placementHarness(t, 1024, 1024)
		for _, id := range []string{"node-a", "node-b"} {
			if err := h.svc.SetNodeStatus(ctx, id, NodeDraining); err != nil {
				t.Fatal(err)
			}
		}
		_, err := h.svc.Create(ctx, defTeam, CreateRequest{})
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "draining") {
			t.Fatalf("create = %v, want 503 naming the draining nodes", err)
		}
	})
	t.Run("a node cannot report as the control plane's own", func(t *testing.T) {
		h, _ := placementHarness(t, 1024, 1024)
		for _, id := range []string{LocalNodeID, "Node", "", "a/b"} {
			if err := h.svc.NodeReported(ctx, id, "x.test:1", &agentv1.NodeInfoResponse{}); !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("NodeReported(%q) = %v, want ErrInvalidArgument", id, err)
			}
		}
		if err := h.svc.NodeReported(ctx, "node-c", "no-port", &agentv1.NodeInfoResponse{}); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("NodeReported without a port = %v, want ErrInvalidArgument", err)
		}
	})
	t.Run("a silent node takes no sandboxes and its own are out of reach", func(t *testing.T) {
		h, _ := placementHarness(t, 4096, 1024, func(c *Config) { c.NodeLostAfter = time.Second })
		sb := h.create(t, CreateRequest{})
		if sb.NodeID != "node-a" {
			t.Fatalf("placed on %s, want node-a", sb.NodeID)
		}
		time.Sleep(1100 * time.Millisecond)
		// a: over a second of silence; b: none.
		if err := h.svc.NodeReported(ctx, "node-b", "node-b.test:3902", &agentv1.NodeInfoResponse{LimitMemoryBytes: 1 << 30}); err != nil {
			t.Fatal(err)
		}
		if got := h.create(t, CreateRequest{}).NodeID; got != "node-b" {
			t.Fatalf("placed on %s, want node-b while node-a is silent", got)
		}
		err := h.svc.Pause(ctx, defTeam, sb.ID)
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "node node-a is lost") {
			t.Fatalf("pause on a lost node = %v, want 503 naming it lost", err)
		}
		var ue *proxy.UnreachableError
		if _, err := h.svc.ResolveSandbox(ctx, sb.ID); !errors.As(err, &ue) {
			t.Fatalf("resolve on a lost node = %v, want an UnreachableError", err)
		}
	})
	t.Run("a kill on a lost node is finished when the node reports again", func(t *testing.T) {
		h, remote := placementHarness(t, 4096, 1024, func(c *Config) { c.NodeLostAfter = time.Second })
		sb := h.create(t, CreateRequest{})
		if sb.NodeID != "node-a" {
			t.Fatalf("placed on %s, want node-a", sb.NodeID)
		}
		time.Sleep(1100 * time.Millisecond)
		if err := h.svc.Kill(ctx, defTeam, sb.ID); err != nil {
			t.Fatalf("kill on a lost node = %v, want it taken", err)
		}
		if got := h.stored(t, sb.ID); got == nil || got.State != StateKilled {
			t.Fatalf("stored after the kill: %+v, want it kept as killed", got)
		}
		if _, ok := remote["node-a"].State(sb.ID); !ok {
			t.Fatal("the lost node lost the sandbox already")
		}
		if err := h.svc.ReconcileNode(ctx, "node-a"); err == nil {
			t.Fatal("reconciled a lost node")
		}
		if err := h.svc.NodeReported(ctx, "node-a", "node-a.test:3902", &agentv1.NodeInfoResponse{LimitMemoryBytes: 4 << 30}); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if _, ok := remote["node-a"].State(sb.ID); !ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the node still holds the killed sandbox after it reported again")
			}
		}
	})
}

// TestReconcileLeavesNewerRecords: a record that changes while the node's
// list is being asked for (a create finishing) is newer than the list, and
// reconciling the node does not mark it lost.
func TestReconcileLeavesNewerRecords(t *testing.T) {
	ctx := context.Background()
	h, remote := placementHarness(t, 4096, 1024)
	sb := h.create(t, CreateRequest{})
	if sb.NodeID != "node-a" {
		t.Fatalf("placed on %s, want node-a", sb.NodeID)
	}
	// The node's list will not hold it, and the record changes while the
	// list is on its way.
	remote["node-a"].Remove(sb.ID)
	remote["node-a"].SetDelay(300 * time.Millisecond)
	done := make(chan error, 1)
	go func() { done <- h.svc.ReconcileNode(ctx, "node-a") }()
	time.Sleep(100 * time.Millisecond)
	got := h.stored(t, sb.ID)
	got.Alias = "changed"
	if err := h.db.UpdateSandbox(ctx, got); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if after := h.stored(t, sb.ID); after.State == StateDead {
		t.Fatalf("a record changed after the list was asked for was marked dead: %s", after.EndReason)
	}
	// Asked again, the list is newer than the record: it is lost.
	remote["node-a"].SetDelay(0)
	if err := h.svc.ReconcileNode(ctx, "node-a"); err != nil {
		t.Fatal(err)
	}
	if after := h.stored(t, sb.ID); after.State != StateDead {
		t.Fatalf("a sandbox the node does not hold is %s after reconciling, want dead", after.State)
	}
}
