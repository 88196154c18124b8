package telemetry_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"lelantos.dev/lelantos/internal/telemetry"
	"lelantos.dev/lelantos/internal/telemetry/telemetrytest"
)

// env is a fake environment for TracingConfig.Getenv.
func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestTracingConfig(t *testing.T) {
	tests := []struct {
		name     string
		endpoint string
		getenv   func(string) string
		enabled  bool
		sendsTo  string
		bad      bool
	}{
		{name: "nothing set", getenv: env()},
		{name: "flag", endpoint: "http://127.0.0.1:4318", getenv: env(), enabled: true, sendsTo: "http://127.0.0.1:4318/v1/traces"},
		{name: "flag with a path", endpoint: "https://127.0.0.1:4318/ingest/traces", getenv: env(), enabled: true, sendsTo: "https://127.0.0.1:4318/ingest/traces"},
		{name: "base variable", getenv: env(telemetry.EnvEndpoint, "http://collector:4318"), enabled: true, sendsTo: "http://collector:4318"},
		{name: "traces variable first", getenv: env(telemetry.EnvEndpoint, "http://a:4318", telemetry.EnvTracesEndpoint, "http://b:4318/v1/traces"), enabled: true, sendsTo: "http://b:4318/v1/traces"},
		{name: "sdk disabled", getenv: env(telemetry.EnvEndpoint, "http://collector:4318", telemetry.EnvSDKDisabled, "true")},
		{name: "exporter none", getenv: env(telemetry.EnvEndpoint, "http://collector:4318", telemetry.EnvTracesExporter, "none")},
		{name: "flag beats disabled", endpoint: "http://127.0.0.1:4318/", getenv: env(telemetry.EnvSDKDisabled, "true"), enabled: true, sendsTo: "http://127.0.0.1:4318/v1/traces"},
		{name: "grpc protocol", getenv: env(telemetry.EnvEndpoint, "http://collector:4317", telemetry.EnvProtocol, "grpc"), bad: true},
		{name: "flag without scheme", endpoint: "127.0.0.1:4318", getenv: env(), bad: true},
		{name: "flag of another scheme", endpoint: "ftp://collector:4318", getenv: env(), bad: true},
		{name: "flag with a query", endpoint: "http://collector:4318/?x=1", getenv: env(), bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := telemetry.NewTracing(context.Background(), telemetry.TracingConfig{Endpoint: tt.endpoint, Getenv: tt.getenv})
			if tt.bad {
				if !errors.Is(err, telemetry.ErrTracingConfig) {
					t.Fatalf("NewTracing = %v, want ErrTracingConfig", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				// Nothing listens: the span the case makes is dropped.
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				_ = tr.Shutdown(ctx)
			}()
			if tr.Enabled() != tt.enabled || tr.Endpoint() != tt.sendsTo {
				t.Fatalf("enabled %v to %q, want %v to %q", tr.Enabled(), tr.Endpoint(), tt.enabled, tt.sendsTo)
			}
			_, span := tr.TracerProvider().Tracer("test").Start(context.Background(), "op")
			if span.SpanContext().IsValid() != tt.enabled {
				t.Fatalf("span recorded: %v, want %v", span.SpanContext().IsValid(), tt.enabled)
			}
			span.End()
		})
	}
}

// TestOTLPExport: spans reach the collector --otlp-endpoint names, as OTLP
// protobuf posted to /v1/traces, at the latest when tracing shuts down.
func TestOTLPExport(t *testing.T) {
	var mu sync.Mutex
	var posts []string
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		if len(b) > 0 {
			posts = append(posts, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type"))
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	defer collector.Close()
	ctx := context.Background()
	tr, err := telemetry.NewTracing(ctx, telemetry.TracingConfig{Endpoint: collector.URL, Getenv: env()})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tr.TracerProvider().Tracer("test").Start(ctx, "create")
	span.End()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(posts) != 1 || posts[0] != "POST /v1/traces application/x-protobuf" {
		t.Fatalf("collector got %q, want one OTLP protobuf POST to /v1/traces", posts)
	}
}

// TestConnectOptionOff: with tracing off, RPCs get an empty option (no
// interceptor to run).
func TestConnectOptionOff(t *testing.T) {
	tr, err := telemetry.NewTracing(context.Background(), telemetry.TracingConfig{Getenv: env()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.ConnectOption(); err != nil || tr.Enabled() {
		t.Fatalf("ConnectOption: %v (enabled %v)", err, tr.Enabled())
	}
}

// TestServeMetrics: one listener serves every registry at /metrics and
// nothing else, and stops when its context ends.
func TestServeMetrics(t *testing.T) {
	a, b := prometheus.NewRegistry(), prometheus.NewRegistry()
	ca := prometheus.NewCounter(prometheus.CounterOpts{Name: "test_a_total", Help: "a"})
	cb := prometheus.NewGauge(prometheus.GaugeOpts{Name: "test_b", Help: "b"})
	a.MustRegister(ca)
	b.MustRegister(cb)
	ca.Add(3)
	cb.Set(7)
	proc, err := telemetry.NewProcessRegistry()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- telemetry.ServeMetrics(ctx, ln, nil, proc, a, b) }()
	base := "http://" + ln.Addr().String()
	f := telemetrytest.Scrape(t, base+telemetry.MetricsPath)
	if f.Sum("test_a_total") != 3 || f.Sum("test_b") != 7 || !f.Has("go_goroutines") || !f.Has("process_cpu_seconds_total") {
		t.Fatalf("scrape lacks a registry's metrics: %d families", len(f))
	}
	resp, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET / = %d, want 404", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ServeMetrics = %v after its context ended, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ServeMetrics did not stop")
	}
}
