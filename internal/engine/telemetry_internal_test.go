package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func TestServerTiming(t *testing.T) {
	tests := []struct {
		header string
		want   time.Duration
		ok     bool
	}{
		{"init;dur=1.5", 1500 * time.Microsecond, true},
		{"db;dur=3, init;desc=\"x\";dur=12", 12 * time.Millisecond, true},
		{"init", 0, false},
		{"init;dur=abc", 0, false},
		{"init;dur=-1", 0, false},
		{"init;dur=1e12", 0, false},
		{"other;dur=4", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.header, func(t *testing.T) {
			got, ok := serverTiming(tt.header, "init")
			if got != tt.want || ok != tt.ok {
				t.Fatalf("serverTiming(%q) = %v, %v; want %v, %v", tt.header, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// stepLog records the steps an engine reports.
type stepLog struct {
	mu    sync.Mutex
	steps []string // "name ok" or "name error"
}

func (l *stepLog) Step(step string, _ time.Duration, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	res := "ok"
	if err != nil {
		res = "error"
	}
	l.steps = append(l.steps, step+" "+res)
}

func (l *stepLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.steps
	l.steps = nil
	return s
}

// tracedClient is a daemon client reporting to a step log and an in-memory
// span exporter, and a parent span to run calls in.
func tracedClient(t *testing.T) (*envdClient, *stepLog, *tracetest.InMemoryExporter, context.Context, trace.Span) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	log := &stepLog{}
	c := newEnvdClient()
	c.observe(newSteps(log, tp))
	ctx, parent := tp.Tracer("test").Start(context.Background(), "agent rpc")
	return c, log, exp, ctx, parent
}

// spanNamed returns the exported span called name.
func spanNamed(t *testing.T, exp *tracetest.InMemoryExporter, name string) tracetest.SpanStub {
	t.Helper()
	for _, s := range exp.GetSpans() {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no span %q among %d", name, len(exp.GetSpans()))
	return tracetest.SpanStub{}
}

// TestInitTraced: a POST /init in a traced operation is the init step; the
// daemon gets the step's span as traceparent, and the time it reports is a
// server span below the step. Outside a traced operation the step is timed
// but makes no span; other requests are no step.
func TestInitTraced(t *testing.T) {
	var mu sync.Mutex
	var gotParent string
	status := http.StatusNoContent
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path == "/init" {
			gotParent = r.Header.Get("Traceparent")
			w.Header().Set("Server-Timing", "init;dur=5")
			w.WriteHeader(status)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	c, log, exp, ctx, parent := tracedClient(t)
	post := func(ctx context.Context, path string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+path, nil)
		resp, err := c.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}

	post(ctx, "/init")
	parent.End()
	step := spanNamed(t, exp, "engine.init")
	if step.Parent.SpanID() != parent.SpanContext().SpanID() {
		t.Fatalf("engine.init's parent is %v, want the operation's span", step.Parent.SpanID())
	}
	want := fmt.Sprintf("00-%s-%s-01", step.SpanContext.TraceID(), step.SpanContext.SpanID())
	if gotParent != want {
		t.Fatalf("daemon got traceparent %q, want the step's %q", gotParent, want)
	}
	daemon := spanNamed(t, exp, "envd /init")
	if daemon.Parent.SpanID() != step.SpanContext.SpanID() || daemon.SpanKind != trace.SpanKindServer {
		t.Fatalf("envd /init: parent %v kind %v, want a server span below engine.init", daemon.Parent.SpanID(), daemon.SpanKind)
	}
	if d := daemon.EndTime.Sub(daemon.StartTime); d != 5*time.Millisecond {
		t.Fatalf("envd /init lasted %v, want the daemon's 5ms", d)
	}
	if got := log.take(); len(got) != 1 || got[0] != "init ok" {
		t.Fatalf("steps %v, want [init ok]", got)
	}

	exp.Reset()
	mu.Lock()
	status = http.StatusUnauthorized
	mu.Unlock()
	post(context.Background(), "/init")
	post(context.Background(), "/files")
	if n := len(exp.GetSpans()); n != 0 {
		t.Fatalf("%d spans outside a traced operation, want none", n)
	}
	if got := log.take(); len(got) != 1 || got[0] != "init error" {
		t.Fatalf("steps %v, want [init error] (a refused /init, and no step for /files)", got)
	}
	if gotParent != "" {
		t.Fatalf("untraced /init carried traceparent %q", gotParent)
	}
}

// TestWaitHealthyTraced: waiting for the daemon is the envd_wait step, a
// span of the operation, and an error when the daemon never answers.
func TestWaitHealthyTraced(t *testing.T) {
	ip := daemonOnLoopback(t)
	c, log, exp, ctx, parent := tracedClient(t)
	if err := c.waitHealthy(ctx, ip); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := c.waitHealthy(short, "127.0.0.1"); err == nil {
		t.Fatal("waitHealthy of a closed port succeeded")
	}
	parent.End()
	if got := log.take(); len(got) != 2 || got[0] != "envd_wait ok" || got[1] != "envd_wait error" {
		t.Fatalf("steps %v, want [envd_wait ok envd_wait error]", got)
	}
	var waits int
	for _, s := range exp.GetSpans() {
		if s.Name == "engine.envd_wait" {
			waits++
			if s.Parent.SpanID() != parent.SpanContext().SpanID() {
				t.Fatalf("engine.envd_wait's parent is %v, want the operation's span", s.Parent.SpanID())
			}
		}
	}
	if waits != 2 {
		t.Fatalf("%d engine.envd_wait spans, want 2", waits)
	}
}

// daemonOnLoopback serves /health with 204 on port EnvdPort of a random
// 127.0.0.0/8 address, and returns that address.
func daemonOnLoopback(t *testing.T) string {
	t.Helper()
	for range 50 {
		ip := fmt.Sprintf("127.%d.%d.%d", rand.IntN(254)+1, rand.IntN(256), rand.IntN(254)+1)
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(EnvdPort)))
		if errors.Is(err, syscall.EADDRINUSE) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusNoContent)
		})}}
		srv.Start()
		t.Cleanup(srv.Close)
		return ip
	}
	t.Fatal("no free 127.0.0.0/8 address for the daemon's port")
	return ""
}
