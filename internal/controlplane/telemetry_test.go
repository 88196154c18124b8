package controlplane

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"lelantos.dev/lelantos/internal/proxy"
	"lelantos.dev/lelantos/internal/store"
	"lelantos.dev/lelantos/internal/telemetry/telemetrytest"
)

func TestResult(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, "ok"},
		{invalidf("timeout: must not be negative"), "invalid"},
		{notFound("abc"), "not_found"},
		{fmt.Errorf("resume: %w", proxy.ErrSandboxNotFound), "not_found"},
		{newError(ErrConflict, "already paused"), "conflict"},
		{proxy.ErrTransitioning, "conflict"},
		{&Error{Kind: ErrQuota, Message: "at the limit"}, "quota"},
		{proxy.ErrTooManySandboxes, "quota"},
		{proxy.ErrResumeDenied, "denied"},
		{&Error{Kind: ErrUnavailable, Message: "node full"}, "unavailable"},
		{newError(ErrUnauthenticated, "no key"), "unauthenticated"},
		{errors.New("disk on fire"), "internal"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := Result(tt.err); got != tt.want {
				t.Fatalf("Result(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}

// TestOperationsObserved: lifecycle operations are timed by result (not the
// proxy's resume checks of sandboxes that are gone), quota
// refusals counted by quota (a create's and a resume's), the stored
// sandboxes counted by state, and each operation traced as a span naming
// its sandbox, with the error's status when it fails.
func TestOperationsObserved(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	h := newTunedHarness(t, func(c *Config) {
		c.Observer, c.TracerProvider = m, tp
		c.TeamQuotas = store.Quotas{MaxSandboxes: 1}
	})
	if err := reg.Register(NewSandboxCollector(h.db)); err != nil {
		t.Fatal(err)
	}
	first := h.create(t, CreateRequest{})
	if _, err := h.svc.Create(ctx, defTeam, CreateRequest{}); !errors.Is(err, ErrQuota) {
		t.Fatalf("second create: %v, want ErrQuota", err)
	}
	if err := h.svc.Pause(ctx, defTeam, first.ID); err != nil {
		t.Fatal(err)
	}
	second := h.create(t, CreateRequest{})
	if _, err := h.svc.Resume(ctx, defTeam, first.ID, ResumeRequest{}); !errors.Is(err, ErrQuota) {
		t.Fatalf("resume over the quota: %v, want ErrQuota", err)
	}
	if err := h.svc.Kill(ctx, defTeam, "nosuchsandbox"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("kill of an unknown sandbox: %v", err)
	}
	// Traffic to an unknown sandbox asks for a resume that is no operation.
	if _, err := h.svc.ResumeForTraffic(ctx, proxy.ResumeRequest{SandboxID: "nosuchsandbox", Port: 8080}); !errors.Is(err, proxy.ErrSandboxNotFound) {
		t.Fatalf("resume of an unknown sandbox for traffic: %v", err)
	}

	f := telemetrytest.Gather(t, reg)
	const ops = "lelantos_controlplane_operation_duration_seconds"
	for _, c := range []struct {
		op, result string
		want       float64
	}{
		{OpCreate, "ok", 2}, {OpCreate, "quota", 1}, {OpPause, "ok", 1}, {OpResume, "quota", 1}, {OpKill, "not_found", 1},
	} {
		if got := f.Sum(ops, "operation", c.op, "result", c.result); got != c.want {
			t.Errorf("%s{operation=%s,result=%s} = %v, want %v", ops, c.op, c.result, got, c.want)
		}
	}
	if got := f.Sum(ops); got != 6 {
		t.Errorf("%v operations timed, want 6", got)
	}
	for q, want := range map[string]float64{store.QuotaSandboxes: 2, store.QuotaVCPU: 0, store.QuotaMemoryMB: 0, store.QuotaBuilds: 0} {
		if got := f.Sum("lelantos_quota_refusals_total", "quota", q); got != want || f.Series("lelantos_quota_refusals_total", "quota", q) != 1 {
			t.Errorf("quota refusals of %s = %v, want %v", q, got, want)
		}
	}
	for state, want := range map[string]float64{StateRunning: 1, StatePaused: 1, StateStarting: 0, StateDead: 0} {
		if got := f.Sum("lelantos_sandboxes", "state", state); got != want || f.Series("lelantos_sandboxes", "state", state) != 1 {
			t.Errorf("lelantos_sandboxes{state=%s} = %v, want %v", state, got, want)
		}
	}

	var creates, failed int
	for _, s := range exp.GetSpans() {
		if s.Name != "controlplane."+OpCreate {
			continue
		}
		creates++
		var id string
		for _, a := range s.Attributes {
			if a.Key == "lelantos.sandbox.id" {
				id = a.Value.AsString()
			}
		}
		switch {
		case s.Status.Code == codes.Error:
			failed++
		case id != first.ID && id != second.ID:
			t.Errorf("create span names sandbox %q, want %s or %s", id, first.ID, second.ID)
		}
	}
	if creates != 3 || failed != 1 {
		t.Fatalf("%d create spans (%d failed), want 3 (1 failed)", creates, failed)
	}
}

// TestSandboxCollectorPages: the sandbox gauge counts every stored sandbox
// however many pages the store needs.
func TestSandboxCollectorPages(t *testing.T) {
	h := newHarness(t)
	n := censusPage + 3
	for i := range n {
		sb := &store.Sandbox{ID: fmt.Sprintf("census%04d", i), TeamID: defTeam, TemplateID: "base", State: StateRunning,
			CPUCount: 1, MemoryMB: 128, DiskSizeMB: 128, StartedAt: h.clock.Now(), EndAt: h.clock.Now()}
		if i%2 == 1 {
			sb.State = StatePaused
		}
		if err := h.db.InsertSandboxWithin(context.Background(), sb, store.Quotas{}); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	if err := reg.Register(NewSandboxCollector(h.db)); err != nil {
		t.Fatal(err)
	}
	f := telemetrytest.Gather(t, reg)
	if got, want := f.Sum("lelantos_sandboxes", "state", StateRunning), float64((n+1)/2); got != want {
		t.Errorf("running = %v, want %v", got, want)
	}
	if got, want := f.Sum("lelantos_sandboxes", "state", StatePaused), float64(n/2); got != want {
		t.Errorf("paused = %v, want %v", got, want)
	}
}
