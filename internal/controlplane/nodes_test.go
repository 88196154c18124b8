package controlplane

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"lelantos.dev/lelantos/internal/controlplane/controlplanetest"
)

// TestNodeHeartbeats: a heartbeat stores the node's report; a node that stops
// answering turns unhealthy once silent for NodeLostAfter, and ready again
// at its next heartbeat, with its last report kept meanwhile.
func TestNodeHeartbeats(t *testing.T) {
	h := newTunedHarness(t, func(c *Config) { c.NodeLostAfter = 150 * time.Millisecond })
	ctx := context.Background()
	if nodes, err := h.svc.Nodes(ctx); err != nil || len(nodes) != 0 {
		t.Fatalf("nodes before any heartbeat = %+v, %v", nodes, err)
	}
	h.create(t, CreateRequest{TemplateID: "base"})
	h.create(t, CreateRequest{TemplateID: "big"})
	if err := h.svc.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	one := func(want string) NodeView {
		t.Helper()
		nodes, err := h.svc.Nodes(ctx)
		if err != nil || len(nodes) != 1 || nodes[0].ID != LocalNodeID {
			t.Fatalf("nodes = %+v, %v; want the local node alone", nodes, err)
		}
		if nodes[0].State != want {
			t.Fatalf("node state %s after %v of silence, want %s", nodes[0].State, nodes[0].Silence, want)
		}
		return nodes[0]
	}
	n := one(NodeReady)
	if r := n.Report; r.Sandboxes["running"] != 2 || r.CommittedCPUs != 6 || r.CommittedMemoryBytes != (512+1024)<<20 ||
		r.CPUCount != 2 || r.Version != "fake" || r.DiskTotalBytes != 100<<30 {
		t.Fatalf("report %+v: want the node's two running sandboxes (6 CPUs, 1536 MB) and its machine", r)
	}
	h.node.Fail(controlplanetest.OpInfo, errors.New("node gone"))
	if err := h.svc.Heartbeat(ctx); err == nil {
		t.Fatal("a heartbeat of a node that does not answer succeeded")
	}
	time.Sleep(200 * time.Millisecond)
	if lost := one(NodeUnhealthy); lost.Report.Sandboxes["running"] != 2 {
		t.Fatalf("a silent node's report %+v: want its last one kept", lost.Report)
	}
	h.node.Fail(controlplanetest.OpInfo, nil)
	if err := h.svc.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	one(NodeReady)
}

// TestRunSendsHeartbeats: Run sends the first heartbeat at once.
func TestRunSendsHeartbeats(t *testing.T) {
	h := newTunedHarness(t, func(c *Config) { c.HeartbeatInterval = time.Hour })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.svc.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		nodes, err := h.svc.Nodes(context.Background())
		if err == nil && len(nodes) == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no heartbeat 5 s after Run started: %+v, %v", nodes, err)
		}
	}
}

// TestDrainingNode: a draining node takes no new sandboxes, created or
// forked (503), while those it holds go on; ready again, it takes them.
func TestDrainingNode(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	running := h.create(t, CreateRequest{TemplateID: "base"})
	if err := h.svc.SetNodeStatus(ctx, LocalNodeID, NodeDraining); !errors.Is(err, ErrNotFound) {
		t.Fatalf("draining a node never heard from = %v, want ErrNotFound", err)
	}
	if err := h.svc.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		id, status string
		want       error
	}{
		{LocalNodeID, "lost", ErrInvalidArgument},
		{LocalNodeID, "", ErrInvalidArgument},
		{"elsewhere", NodeDraining, ErrNotFound},
	} {
		if err := h.svc.SetNodeStatus(ctx, c.id, c.status); !errors.Is(err, c.want) {
			t.Fatalf("SetNodeStatus(%s, %q) = %v, want %v", c.id, c.status, err, c.want)
		}
	}
	if err := h.svc.SetNodeStatus(ctx, LocalNodeID, NodeDraining); err != nil {
		t.Fatal(err)
	}
	if nodes, _ := h.svc.Nodes(ctx); len(nodes) != 1 || nodes[0].State != NodeDraining {
		t.Fatalf("nodes after draining: %+v", nodes)
	}
	if _, err := h.svc.Create(ctx, defTeam, CreateRequest{TemplateID: "base"}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("create on a draining node = %v, want ErrUnavailable", err)
	}
	if _, err := h.svc.Fork(ctx, defTeam, running.ID, ForkRequest{Count: 1}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("fork on a draining node = %v, want ErrUnavailable", err)
	}
	if err := h.svc.Pause(ctx, defTeam, running.ID); err != nil {
		t.Fatalf("pause of a sandbox the draining node holds: %v", err)
	}
	if err := h.svc.Kill(ctx, defTeam, running.ID); err != nil {
		t.Fatalf("kill of a sandbox the draining node holds: %v", err)
	}
	if err := h.svc.SetNodeStatus(ctx, LocalNodeID, NodeReady); err != nil {
		t.Fatal(err)
	}
	h.create(t, CreateRequest{TemplateID: "base"})
}

// TestNodeCollector: lelantos_nodes counts the nodes by state, every state
// present, and each node's heartbeat age is reported.
func TestNodeCollector(t *testing.T) {
	h := newHarness(t)
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(NewNodeCollector(h.svc)); err != nil {
		t.Fatal(err)
	}
	want := func(ready, draining, unhealthy int) {
		t.Helper()
		exp := fmt.Sprintf(`
# HELP lelantos_nodes Nodes by state: ready, draining (set by the operator), unhealthy (silent for longer than three heartbeats).
# TYPE lelantos_nodes gauge
lelantos_nodes{state="draining"} %d
lelantos_nodes{state="ready"} %d
lelantos_nodes{state="unhealthy"} %d
`, draining, ready, unhealthy)
		if err := testutil.GatherAndCompare(reg, strings.NewReader(exp), "lelantos_nodes"); err != nil {
			t.Fatal(err)
		}
	}
	want(0, 0, 0)
	if err := h.svc.Heartbeat(context.Background()); err != nil {
		t.Fatal(err)
	}
	want(1, 0, 0)
	if n, err := testutil.GatherAndCount(reg, "lelantos_node_heartbeat_age_seconds"); err != nil || n != 1 {
		t.Fatalf("heartbeat ages: %d series, %v; want the local node's", n, err)
	}
	if err := h.svc.SetNodeStatus(context.Background(), LocalNodeID, NodeDraining); err != nil {
		t.Fatal(err)
	}
	want(0, 1, 0)
}
