package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/store"
)

// testNodes: a node's row is made by its first heartbeat and keeps its first
// time; each heartbeat replaces the report and restarts its silence, by the
// database's clock; other nodes' rows are apart, listed by ID.
func testNodes(t *testing.T, e *env) {
	ctx := context.Background()
	db := e.open(t)
	if _, err := db.GetNode(ctx, "node-a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetNode of a node never heard = %v, want ErrNotFound", err)
	}
	if nodes, err := db.ListNodes(ctx); err != nil || len(nodes) != 0 {
		t.Fatalf("ListNodes of an empty store = %v, %v", nodes, err)
	}
	for _, c := range []struct{ id, report string }{{"", `{}`}, {"node-a", ""}} {
		if err := db.PutNodeHeartbeat(ctx, c.id, "", []byte(c.report)); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("PutNodeHeartbeat(%q, %q) = %v, want ErrInvalid", c.id, c.report, err)
		}
	}
	beat := func(id, report string) {
		t.Helper()
		if err := db.PutNodeHeartbeat(ctx, id, "10.0.0.1:3902", []byte(report)); err != nil {
			t.Fatalf("PutNodeHeartbeat(%s): %v", id, err)
		}
	}
	beat("node-b", `{"cpus":4}`)
	beat("node-a", `{"cpus":2}`)
	first, err := db.GetNode(ctx, "node-a")
	if err != nil || string(first.Report) != `{"cpus":2}` || first.HeartbeatAt.IsZero() || !first.CreatedAt.Equal(first.HeartbeatAt) {
		t.Fatalf("GetNode after one heartbeat = %+v, %v", first, err)
	}
	time.Sleep(30 * time.Millisecond)
	quiet, err := db.GetNode(ctx, "node-a")
	if err != nil || quiet.Silence < 25*time.Millisecond || quiet.Silence > time.Minute {
		t.Fatalf("silence 30 ms after a heartbeat = %v (%v), want about 30ms (the clock may count milliseconds)", quiet.Silence, err)
	}
	beat("node-a", `{"cpus":2,"sandboxes":1}`)
	again, err := db.GetNode(ctx, "node-a")
	switch {
	case err != nil:
		t.Fatal(err)
	case string(again.Report) != `{"cpus":2,"sandboxes":1}`:
		t.Fatalf("report after a second heartbeat = %s", again.Report)
	case !again.CreatedAt.Equal(first.CreatedAt) || !again.HeartbeatAt.After(first.HeartbeatAt):
		t.Fatalf("times after a second heartbeat: created %v (was %v), heartbeat %v (was %v)",
			again.CreatedAt, first.CreatedAt, again.HeartbeatAt, first.HeartbeatAt)
	case again.Silence >= quiet.Silence:
		t.Fatalf("silence after a heartbeat %v, before it %v: want it restarted", again.Silence, quiet.Silence)
	}
	nodes, err := db.ListNodes(ctx)
	if err != nil || len(nodes) != 2 || nodes[0].ID != "node-a" || nodes[1].ID != "node-b" || string(nodes[1].Report) != `{"cpus":4}` {
		t.Fatalf("ListNodes = %+v, %v; want node-a then node-b with its own report", nodes, err)
	}
	if nodes[0].Address != "10.0.0.1:3902" {
		t.Fatalf("address %q, want the heartbeat's", nodes[0].Address)
	}
	if nodes[0].Status != store.NodeReady || nodes[1].Status != store.NodeReady {
		t.Fatalf("statuses %s, %s: want a new node ready", nodes[0].Status, nodes[1].Status)
	}
}

// testNodeStatus: the operator's status of a node is kept across heartbeats;
// unknown nodes and statuses are refused.
func testNodeStatus(t *testing.T, e *env) {
	ctx := context.Background()
	db := e.open(t)
	if err := db.SetNodeStatus(ctx, "node-a", store.NodeDraining); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("SetNodeStatus of a node never heard = %v, want ErrNotFound", err)
	}
	if err := db.PutNodeHeartbeat(ctx, "node-a", "", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "lost", "Draining"} {
		if err := db.SetNodeStatus(ctx, "node-a", bad); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("SetNodeStatus(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	if err := db.SetNodeStatus(ctx, "node-a", store.NodeDraining); err != nil {
		t.Fatal(err)
	}
	if err := db.PutNodeHeartbeat(ctx, "node-a", "", []byte(`{"after":1}`)); err != nil {
		t.Fatal(err)
	}
	n, err := db.GetNode(ctx, "node-a")
	if err != nil || n.Status != store.NodeDraining || string(n.Report) != `{"after":1}` {
		t.Fatalf("after draining and a heartbeat: %+v, %v; want draining with the new report", n, err)
	}
	if err := db.SetNodeStatus(ctx, "node-a", store.NodeReady); err != nil {
		t.Fatal(err)
	}
	if n, _ := db.GetNode(ctx, "node-a"); n == nil || n.Status != store.NodeReady {
		t.Fatalf("after ready again: %+v", n)
	}
}

// testNodeLoads: a node's load counts its live sandboxes (starting, running,
// pausing, resuming) and their CPUs and memory; paused, killed and dead ones
// commit nothing, and nodes without live sandboxes are absent.
func testNodeLoads(t *testing.T, e *env) {
	ctx := context.Background()
	db := e.open(t)
	if loads, err := db.NodeLoads(ctx); err != nil || len(loads) != 0 {
		t.Fatalf("NodeLoads of an empty store = %v, %v", loads, err)
	}
	for _, c := range []struct {
		id, node, state string
	}{
		{"a1", "node-a", store.StateRunning},
		{"a2", "node-a", store.StateStarting},
		{"a3", "node-a", store.StatePaused},
		{"b1", "node-b", store.StateResuming},
		{"b2", "node-b", store.StateDead},
		{"c1", "node-c", store.StateKilled},
	} {
		sb := newSandbox(c.id)
		sb.NodeID, sb.State = c.node, c.state
		mustInsert(t, db, sb)
	}
	loads, err := db.NodeLoads(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]store.NodeLoad{"node-a": {Sandboxes: 2, CPUs: 4, MemoryMB: 1024}, "node-b": {Sandboxes: 1, CPUs: 2, MemoryMB: 512}}
	if len(loads) != len(want) || loads["node-a"] != want["node-a"] || loads["node-b"] != want["node-b"] {
		t.Fatalf("NodeLoads = %+v, want %+v", loads, want)
	}
}
