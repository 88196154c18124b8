package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"lelantos.dev/lelantos/internal/controlplane"
	"lelantos.dev/lelantos/internal/store"
)

// requestLog records the requests the API reports.
type requestLog struct {
	mu   sync.Mutex
	seen []observed
}

type observed struct {
	method, route string
	status        int
}

func (l *requestLog) Request(method, route string, status int, _ time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen = append(l.seen, observed{method, route, status})
}

func (l *requestLog) take() []observed {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.seen
	l.seen = nil
	return s
}

// TestObserveRequests: every request is reported with its route pattern
// (never its path, which holds IDs), its status and a method among the few
// net/http names; and traced as a server span of its own, linked to, not
// continuing, a traceparent the client sent.
func TestObserveRequests(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "api.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	log := &requestLog{}
	// Only routes that never reach the Service are asked for.
	h := NewHandler(nil, controlplane.NewAuthenticator(db, nil), Options{Logger: quiet(), Observer: log, TracerProvider: tp})
	srv := httptest.NewServer(h)
	defer srv.Close()

	clientTrace := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	tests := []struct {
		method, path string
		traceparent  string
		want         observed
	}{
		{http.MethodGet, "/health", "", observed{"GET", "/health", 200}},
		{http.MethodGet, "/sandboxes/abc123", clientTrace, observed{"GET", "/sandboxes/{sandboxID}", 401}},
		{http.MethodDelete, "/sandboxes/xyz", "", observed{"DELETE", "/sandboxes/{sandboxID}", 401}},
		{http.MethodGet, "/no/such/route", "", observed{"GET", RouteNone, 404}},
		{"BREW", "/health", "", observed{"other", RouteNone, 405}},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			exp.Reset()
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			if tt.traceparent != "" {
				req.Header.Set("Traceparent", tt.traceparent)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := log.take(); len(got) != 1 || got[0] != tt.want {
				t.Fatalf("observed %v, want [%v]", got, tt.want)
			}
			spans := exp.GetSpans()
			if len(spans) != 1 {
				t.Fatalf("%d spans, want 1", len(spans))
			}
			s := spans[0]
			if s.Name != tt.want.method+" "+tt.want.route || s.SpanKind != trace.SpanKindServer || s.Parent.IsValid() {
				t.Fatalf("span %q kind %v parent %v, want a root server span %q", s.Name, s.SpanKind, s.Parent, tt.want.method+" "+tt.want.route)
			}
			if tt.traceparent != "" {
				if len(s.Links) != 1 || s.Links[0].SpanContext.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" {
					t.Fatalf("links %v, want the client's trace", s.Links)
				}
				if s.SpanContext.TraceID().String() == "0af7651916cd43dd8448eb211c80319c" {
					t.Fatal("the span continued the client's trace")
				}
			}
		})
	}
}

// TestObserveOff: without an Observer or a TracerProvider the API adds no
// middleware of its own and answers as before.
func TestObserveOff(t *testing.T) {
	srv := httptest.NewServer(NewHandler(nil, nil, Options{Logger: quiet()}))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
}
