package agent

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	agentv1 "lelantos.dev/lelantos/internal/gen/agent/v1"
	"lelantos.dev/lelantos/internal/gen/agent/v1/agentv1connect"
	"lelantos.dev/lelantos/internal/telemetry/telemetrytest"
)

// TestRPCMetrics: the server interceptor times every call it serves under
// its method's name and answer's code; the client's side of a call is not
// the node's work and is not timed.
func TestRPCMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(agentv1connect.NewAgentServiceHandler(agentv1connect.UnimplementedAgentServiceHandler{}, connect.WithInterceptors(m)))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	// The client carries the interceptor too: its calls must not count twice.
	c := NewClient(srv.Client(), srv.URL, connect.WithInterceptors(m))
	ctx := context.Background()
	for range 2 {
		if _, err := c.KillSandbox(ctx, connect.NewRequest(&agentv1.KillSandboxRequest{SandboxId: "a"})); connect.CodeOf(err) != connect.CodeUnimplemented {
			t.Fatalf("KillSandbox: %v", err)
		}
	}
	if _, err := c.ListSandboxes(ctx, connect.NewRequest(&agentv1.ListSandboxesRequest{})); connect.CodeOf(err) != connect.CodeUnimplemented {
		t.Fatalf("ListSandboxes: %v", err)
	}
	f := telemetrytest.Gather(t, reg)
	const name = "lelantos_node_rpc_duration_seconds"
	if got := f.Sum(name, "procedure", "KillSandbox", "code", "unimplemented"); got != 2 {
		t.Errorf("KillSandbox calls = %v, want 2", got)
	}
	if got := f.Sum(name, "procedure", "ListSandboxes", "code", "unimplemented"); got != 1 {
		t.Errorf("ListSandboxes calls = %v, want 1", got)
	}
	if got := f.Sum(name); got != 3 {
		t.Errorf("%v calls timed, want 3", got)
	}
}
