package proxy

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestMetricsCountBytesByRoute: the bytes of a request and its answer are
// counted on the connection to the sandbox, under the kind of its route and
// in each direction, and nowhere else.
func TestMetricsCountBytesByRoute(t *testing.T) {
	big := strings.Repeat("x", 100<<10)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		io.WriteString(w, big)
	})
	port := backend(t, h)
	envdIP := envdBackend(t, h)
	res := fakeResolver{targets: map[string]Target{"app": {Address: "127.0.0.1"}, "envd": {Address: envdIP}}}
	tests := []struct {
		name, id string
		port     int
		kind     string
	}{
		{"daemon port", "envd", EnvdPort, RouteEnvd},
		{"other port", "app", port, RoutePort},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewMetrics(prometheus.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			addr := serveProxy(t, newTestProxy(t, Config{Observer: m}, res), false)
			body := strings.Repeat("y", 50<<10)
			req, _ := http.NewRequest(http.MethodPost, "http://proxy/upload", strings.NewReader(body))
			req.Header.Set(HeaderSandboxID, tt.id)
			req.Header.Set(HeaderSandboxPort, strconv.Itoa(tt.port))
			resp, err := proxyClient(t, addr, nil, false).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, resp); resp.StatusCode != http.StatusOK || len(got) != len(big) {
				t.Fatalf("status %d, %d bytes; want 200 with %d", resp.StatusCode, len(got), len(big))
			}
			other := RouteEnvd
			if tt.kind == RouteEnvd {
				other = RoutePort
			}
			for _, c := range []struct {
				kind, dir string
				min, max  float64
			}{
				{tt.kind, "to_sandbox", float64(len(body)), float64(len(body)) + 4096},
				{tt.kind, "from_sandbox", float64(len(big)), float64(len(big)) + 4096},
				{other, "to_sandbox", 0, 0},
				{other, "from_sandbox", 0, 0},
			} {
				if got := testutil.ToFloat64(m.bytes.WithLabelValues(c.kind, c.dir)); got < c.min || got > c.max {
					t.Errorf("bytes{route=%s,direction=%s} = %v, want %v..%v", c.kind, c.dir, got, c.min, c.max)
				}
			}
		})
	}
}

// TestMetricsCountRefusals: every answer the proxy gives itself is counted
// once, under its route kind and reason; a request it forwards is not.
func TestMetricsCountRefusals(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") })
	port := backend(t, ok)
	// hangUp closes the connection without an answer.
	hangUp := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			c.Close()
		}
	}))
	closed := closedPort(t)
	// resumer refuses to resume a paused sandbox with err.
	resumer := func(err error) Resumer {
		return &fakeResumer{res: &fakeResolver{targets: map[string]Target{}}, err: err}
	}
	res := fakeResolver{targets: map[string]Target{
		"abc":    {Address: "127.0.0.1"},
		"tok":    {Address: "127.0.0.1", TrafficAccessToken: "s3cret"},
		"noaddr": {},
	}}
	tests := []struct {
		name     string
		resolver Resolver
		resumer  Resumer // nil: none
		method   string
		id, port string
		kind     string
		reason   string // "" : forwarded, nothing counted
	}{
		{"forwarded", res, nil, http.MethodGet, "abc", strconv.Itoa(port), RoutePort, ""},
		{"connect", res, nil, http.MethodConnect, "", "", RouteNone, ReasonMethod},
		{"no route", res, nil, http.MethodGet, "", "", RouteNone, ReasonNoRoute},
		{"unknown sandbox", res, nil, http.MethodGet, "gone", strconv.Itoa(EnvdPort), RouteEnvd, ReasonNotFound},
		{"no address", res, nil, http.MethodGet, "noaddr", "8080", RoutePort, ReasonNoAddress},
		{"token missing", res, nil, http.MethodGet, "tok", strconv.Itoa(port), RoutePort, ReasonToken},
		{"port closed", res, nil, http.MethodGet, "abc", strconv.Itoa(closed), RoutePort, ReasonPortClosed},
		{"port hangs up", res, nil, http.MethodGet, "abc", strconv.Itoa(hangUp), RoutePort, ReasonNoAnswer},
		{"resolver fails", fakeResolver{err: errors.New("db locked")}, nil, http.MethodGet, "abc", "8080", RoutePort, ReasonBusy},
		{"resume denied", res, resumer(fmt.Errorf("x: %w", ErrResumeDenied)), http.MethodGet, "paused", "8080", RoutePort, ReasonResumeDenied},
		{"resume in a transition", res, resumer(fmt.Errorf("x: %w", ErrTransitioning)), http.MethodGet, "paused", "8080", RoutePort, ReasonTransitioning},
		{"resume over quota", res, resumer(fmt.Errorf("x: %w", ErrTooManySandboxes)), http.MethodGet, "paused", strconv.Itoa(EnvdPort), RouteEnvd, ReasonQuota},
		{"not to resume", res, resumer(fmt.Errorf("x: %w", ErrSandboxNotFound)), http.MethodGet, "gone", "8080", RoutePort, ReasonNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewMetrics(prometheus.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			addr := serveProxy(t, newTestProxy(t, Config{Observer: m, Resumer: tt.resumer}, tt.resolver), false)
			req, _ := http.NewRequest(tt.method, "http://proxy/", nil)
			if tt.method == http.MethodConnect {
				req.URL.Path, req.Host = "", "example.test:443"
			}
			if tt.id != "" {
				req.Header.Set(HeaderSandboxID, tt.id)
				req.Header.Set(HeaderSandboxPort, tt.port)
			}
			resp, err := proxyClient(t, addr, nil, false).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			readAll(t, resp)
			if got := testutil.CollectAndCount(m.errors); tt.reason == "" && got != 0 {
				t.Fatalf("forwarded request counted as %d refusals (status %d)", got, resp.StatusCode)
			}
			if tt.reason == "" {
				return
			}
			if got := testutil.ToFloat64(m.errors.WithLabelValues(tt.kind, tt.reason)); got != 1 {
				t.Fatalf("errors{route=%s,reason=%s} = %v after a %d answer, want 1", tt.kind, tt.reason, got, resp.StatusCode)
			}
			if got := testutil.CollectAndCount(m.errors); got != 1 {
				t.Fatalf("%d error series, want only the one", got)
			}
		})
	}
}
