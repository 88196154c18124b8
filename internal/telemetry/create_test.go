package telemetry_test

import (
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"lelantos.dev/lelantos/internal/engine"
	"lelantos.dev/lelantos/internal/proxy"
	"lelantos.dev/lelantos/internal/store"
	"lelantos.dev/lelantos/internal/telemetry/telemetrytest"
)

// TestMetricsOfACreate: a create through the API moves the families of every
// component on /metrics, a refused create and proxy traffic move theirs, and
// a kill brings the gauges back.
func TestMetricsOfACreate(t *testing.T) {
	s := newStack(t)
	before := telemetrytest.Scrape(t, s.metrics)
	for _, family := range []string{"lelantos_sandboxes", "lelantos_node_sandboxes", "lelantos_node_capacity_vcpus",
		"lelantos_node_committed_memory_bytes", "lelantos_node_disk_free_bytes", "lelantos_quota_refusals_total", "go_goroutines"} {
		if !before.Has(family) {
			t.Errorf("/metrics lacks %s before any request", family)
		}
	}
	if before.Sum("lelantos_node_capacity_vcpus") <= 0 || before.Sum("lelantos_node_disk_total_bytes") <= 0 {
		t.Errorf("node capacity %v vCPUs, disk %v bytes: want positive", before.Sum("lelantos_node_capacity_vcpus"), before.Sum("lelantos_node_disk_total_bytes"))
	}

	id := s.create(t)
	if status, body := s.call(t, http.MethodPost, "/sandboxes", `{"templateID":"base"}`); status != http.StatusTooManyRequests {
		t.Fatalf("create over the quota: %d %s, want 429", status, body)
	}
	if got := s.throughProxy(t, id); got != http.StatusNoContent {
		t.Fatalf("daemon /health through the proxy: %d", got)
	}
	if got := s.throughProxy(t, "nosuchsandbox"); got != http.StatusBadGateway {
		t.Fatalf("unknown sandbox through the proxy: %d, want 502", got)
	}
	after := telemetrytest.Scrape(t, s.metrics)

	moved := func(what string, want float64, name string, labels ...string) {
		t.Helper()
		if got := after.Sum(name, labels...) - before.Sum(name, labels...); got != want {
			t.Errorf("%s: %s%v moved by %v, want %v", what, name, labels, got, want)
		}
	}
	moved("API", 1, "lelantos_api_request_duration_seconds", "method", "POST", "route", "/sandboxes", "code", "201")
	moved("API", 1, "lelantos_api_request_duration_seconds", "method", "POST", "route", "/sandboxes", "code", "429")
	moved("control plane", 1, "lelantos_controlplane_operation_duration_seconds", "operation", "create", "result", "ok")
	moved("control plane", 1, "lelantos_controlplane_operation_duration_seconds", "operation", "create", "result", "quota")
	moved("quota", 1, "lelantos_quota_refusals_total", "quota", store.QuotaSandboxes)
	moved("agent", 1, "lelantos_node_rpc_duration_seconds", "procedure", "CreateSandbox", "code", "ok")
	for _, step := range []string{engine.StepNetwork, engine.StepStart, engine.StepEnvdWait, engine.StepInit} {
		moved("engine", 1, "lelantos_node_step_duration_seconds", "step", step, "result", "ok")
	}
	moved("engine", 1, "lelantos_node_committed_vcpus")
	moved("engine", 256<<20, "lelantos_node_committed_memory_bytes")
	moved("proxy", 1, "lelantos_proxy_errors_total", "route", proxy.RouteEnvd, "reason", proxy.ReasonNotFound)
	for _, dir := range []string{"to_sandbox", "from_sandbox"} {
		if got := after.Sum("lelantos_proxy_bytes_total", "route", proxy.RouteEnvd, "direction", dir); got < 50 {
			t.Errorf("proxy bytes %s to the daemon: %v, want a request's worth", dir, got)
		}
	}
	if got := after.Sum("lelantos_sandboxes", "state", "running"); got != 1 {
		t.Errorf("lelantos_sandboxes{state=running} = %v, want 1", got)
	}
	if got := after.Sum("lelantos_node_sandboxes", "state", "running"); got != 1 {
		t.Errorf("lelantos_node_sandboxes{state=running} = %v, want 1", got)
	}

	if status, body := s.call(t, http.MethodDelete, "/sandboxes/"+id, ""); status != http.StatusNoContent {
		t.Fatalf("kill: %d %s", status, body)
	}
	killed := telemetrytest.Scrape(t, s.metrics)
	if got := killed.Sum("lelantos_controlplane_operation_duration_seconds", "operation", "kill", "result", "ok"); got != 1 {
		t.Errorf("kills timed: %v, want 1", got)
	}
	if got := killed.Sum("lelantos_node_rpc_duration_seconds", "procedure", "KillSandbox", "code", "ok"); got != 1 {
		t.Errorf("KillSandbox RPCs timed: %v, want 1", got)
	}
	if got := killed.Sum("lelantos_api_request_duration_seconds", "route", "/sandboxes/{sandboxID}", "code", "204"); got != 1 {
		t.Errorf("DELETE /sandboxes/{sandboxID} timed: %v, want 1 (by its route, not its path)", got)
	}
	if killed.Sum("lelantos_sandboxes", "state", "running") != 0 || killed.Sum("lelantos_node_sandboxes", "state", "running") != 0 ||
		killed.Sum("lelantos_node_committed_vcpus") != before.Sum("lelantos_node_committed_vcpus") {
		t.Errorf("after the kill: %v running in the store, %v on the node, %v vCPUs committed (%v before)",
			killed.Sum("lelantos_sandboxes", "state", "running"), killed.Sum("lelantos_node_sandboxes", "state", "running"),
			killed.Sum("lelantos_node_committed_vcpus"), before.Sum("lelantos_node_committed_vcpus"))
	}
	for name, mf := range killed {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), id) {
					t.Errorf("%s has the sandbox's ID in label %s=%q", name, l.GetName(), l.GetValue())
				}
			}
		}
	}
}

// TestTraceOfACreate: a create is one trace from the API request through the
// control plane's operation and the agent RPC (its server span a child of
// the client's, across the HTTP hop) to the engine's steps and the daemon's
// /init.
func TestTraceOfACreate(t *testing.T) {
	s := newStack(t)
	id := s.create(t)
	spans := s.spans.GetSpans()
	find := func(what string, match func(tracetest.SpanStub) bool) tracetest.SpanStub {
		t.Helper()
		var found []tracetest.SpanStub
		for _, sp := range spans {
			if match(sp) {
				found = append(found, sp)
			}
		}
		if len(found) != 1 {
			var names []string
			for _, sp := range spans {
				names = append(names, sp.Name)
			}
			t.Fatalf("%d spans of %s, want 1; spans: %v", len(found), what, names)
		}
		return found[0]
	}
	named := func(name string) func(tracetest.SpanStub) bool {
		return func(sp tracetest.SpanStub) bool { return sp.Name == name }
	}
	rpc := func(kind trace.SpanKind) func(tracetest.SpanStub) bool {
		return func(sp tracetest.SpanStub) bool {
			return sp.SpanKind == kind && strings.HasSuffix(sp.Name, "/CreateSandbox")
		}
	}
	req := find("the API request", named("POST /sandboxes"))
	if req.Parent.IsValid() || req.SpanKind != trace.SpanKindServer {
		t.Fatalf("API span: parent %v kind %v, want a root server span", req.Parent, req.SpanKind)
	}
	op := find("the control plane's create", named("controlplane.create"))
	client := find("the agent RPC's client", rpc(trace.SpanKindClient))
	server := find("the agent RPC's server", rpc(trace.SpanKindServer))
	initStep := find("the init step", named("engine.init"))
	chain := []struct {
		what         string
		child, under tracetest.SpanStub
	}{
		{"control plane under the API", op, req},
		{"RPC client under the control plane", client, op},
		{"RPC server under its client, across the RPC", server, client},
		{"network step under the RPC", find("the network step", named("engine.network")), server},
		{"runtime step under the RPC", find("the runtime step", named("engine.start")), server},
		{"daemon wait under the RPC", find("the daemon wait", named("engine.envd_wait")), server},
		{"init step under the RPC", initStep, server},
		{"the daemon's /init under the init step", find("the daemon's /init", named("envd /init")), initStep},
	}
	for _, c := range chain {
		if c.child.Parent.SpanID() != c.under.SpanContext.SpanID() || c.child.SpanContext.TraceID() != req.SpanContext.TraceID() {
			t.Errorf("%s: %q has parent %v in trace %v, want %q (%v) in trace %v", c.what, c.child.Name, c.child.Parent.SpanID(),
				c.child.SpanContext.TraceID(), c.under.Name, c.under.SpanContext.SpanID(), req.SpanContext.TraceID())
		}
	}
	var naming bool
	for _, a := range op.Attributes {
		naming = naming || (a.Key == "lelantos.sandbox.id" && a.Value.AsString() == id)
	}
	if !naming {
		t.Errorf("controlplane.create does not name sandbox %s: %v", id, op.Attributes)
	}
}
