package api

import (
	"context"
	"strings"
	"testing"

	"connectrpc.com/connect"

	agentv1 "lelantos.dev/lelantos/internal/gen/agent/v1"
)

// exerciseNodes calls GET /nodes before and after a heartbeat, and as
// another team, as TestSpecConformance checks every route.
func exerciseNodes(t *testing.T, e *env, want func(*response, int) *response) {
	t.Helper()
	var nodes []nodeJSON
	want(e.do("GET", "/nodes", ""), 200).decode(t, &nodes)
	if len(nodes) != 0 {
		t.Fatalf("GET /nodes before any heartbeat = %+v", nodes)
	}
	if err := e.svc.Heartbeat(context.Background()); err != nil {
		t.Fatal(err)
	}
	held, err := e.node.ListSandboxes(context.Background(), connect.NewRequest(&agentv1.ListSandboxesRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	running := 0
	for _, sb := range held.Msg.GetSandboxes() {
		if sb.GetState() == agentv1.SandboxState_SANDBOX_STATE_RUNNING {
			running++
		}
	}
	want(e.do("GET", "/nodes", ""), 200).decode(t, &nodes)
	if len(nodes) != 1 {
		t.Fatalf("GET /nodes after a heartbeat = %+v, want the local node", nodes)
	}
	n := nodes[0]
	if n.ID != "local" || n.NodeID != n.ID || n.Status != "ready" || n.SandboxCount != running || n.Version != "fake" ||
		n.Metrics.CPUCount != 2 || n.Metrics.CPUPercent != 25 || len(n.Metrics.Disks) != 1 || n.Metrics.Disks[0].TotalBytes != 100<<30 ||
		n.LastHeartbeat == "" {
		t.Fatalf("GET /nodes = %+v, want the local node ready with its %d running sandboxes", n, running)
	}
	// Another team's key sees no node and drains none: the counts are every team's.
	want(e.doAs(e.keyB, "GET", "/nodes", ""), 403)
	want(e.doAs(e.keyB, "POST", "/nodes/local", `{"status":"draining"}`), 403)

	// Draining: no new sandboxes, then ready again.
	for _, bad := range []struct{ path, body string }{
		{"/nodes/local", `{}`}, {"/nodes/local", `{"status":"lost"}`}, {"/nodes/local", `{"status":1}`},
		{"/nodes/local", `{"status":"draining","clusterID":"c1"}`},
	} {
		want(e.do("POST", bad.path, bad.body), 400)
	}
	want(e.do("POST", "/nodes/elsewhere", `{"status":"draining"}`), 404)
	want(e.do("POST", "/nodes/local", `{"status":"draining"}`), 204)
	want(e.do("GET", "/nodes", ""), 200).decode(t, &nodes)
	if len(nodes) != 1 || nodes[0].Status != "draining" {
		t.Fatalf("GET /nodes after draining = %+v", nodes)
	}
	if r := want(e.do("POST", "/sandboxes", `{"templateID":"base"}`), 503); !strings.Contains(string(r.Body), "draining") {
		t.Fatalf("create on a draining node: %s", r.Body)
	}
	want(e.do("POST", "/nodes/local", `{"status":"ready","clusterID":null}`), 204)
	want(e.do("POST", "/sandboxes", `{"templateID":"base"}`), 201)
}
