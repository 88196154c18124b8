package telemetry_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"lelantos.dev/lelantos/internal/agent"
	"lelantos.dev/lelantos/internal/api"
	"lelantos.dev/lelantos/internal/controlplane"
	"lelantos.dev/lelantos/internal/engine"
	"lelantos.dev/lelantos/internal/engine/enginetest"
	"lelantos.dev/lelantos/internal/proxy"
	"lelantos.dev/lelantos/internal/store"
	"lelantos.dev/lelantos/internal/telemetry"
)

func TestMain(m *testing.M) { os.Exit(enginetest.Main(m)) }

// stackSubnet is this package's sandbox subnet, unlike any other test's.
const stackSubnet = "10.238.0.0/24"

// stack is the server's handler stack as `lelantos serve` wires it: the API
// and the proxy over a control plane on SQLite, which reaches a real engine
// (gVisor) through the agent RPC over HTTP; metrics in a control-plane and a
// node registry served on one /metrics listener, spans in memory.
type stack struct {
	api, proxy, metrics string // base URLs
	key                 string
	spans               *tracetest.InMemoryExporter
	engine              *engine.Engine
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newStack(t *testing.T) *stack {
	t.Helper()
	ctx := context.Background()
	node := enginetest.NewNode(t, stackSubnet)
	rootfs := enginetest.BaseRootfs(t)
	exp := tracetest.NewInMemoryExporter()
	tr, err := telemetry.NewTracing(ctx, telemetry.TracingConfig{Exporter: exp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
	tp := tr.TracerProvider()
	rpcTracing, err := tr.ConnectOption()
	if err != nil {
		t.Fatal(err)
	}
	process, err := telemetry.NewProcessRegistry()
	if err != nil {
		t.Fatal(err)
	}
	cpReg, nodeReg := prometheus.NewRegistry(), prometheus.NewRegistry()

	// The node: engine, its gauges, the agent RPC server.
	em, err := engine.NewMetrics(nodeReg)
	check(t, err)
	eng := node.EngineWith(t, func(o *engine.Options) { o.Observer, o.TracerProvider, o.Logger = em, tp, quiet() })
	t.Cleanup(func() {
		for _, st := range eng.List() {
			if err := eng.Kill(context.Background(), st.Spec.ID); err != nil && !errors.Is(err, engine.ErrNotFound) {
				t.Errorf("clean up sandbox %s: %v", st.Spec.ID, err)
			}
		}
	})
	if err := nodeReg.Register(engine.NewCollector(eng)); err != nil {
		t.Fatal(err)
	}
	am, err := agent.NewMetrics(nodeReg)
	check(t, err)
	mux := http.NewServeMux()
	mux.Handle(agent.NewServer(eng, agent.Build{Version: "test"}).Handler(connect.WithInterceptors(am), rpcTracing))
	agentSrv := httptest.NewServer(mux)
	t.Cleanup(agentSrv.Close)

	// The control plane, its API and the proxy.
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "lelantos.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.PutTemplate(ctx, &store.Template{ID: "base", BuildID: "b1", RootfsPath: rootfs, CPUCount: 1, MemoryMB: 256,
		DiskSizeMB: 512, EnvdVersion: "0.6.4", Status: store.TemplateReady, Public: true}); err != nil {
		t.Fatal(err)
	}
	key, _, err := controlplane.EnsureAdminKey(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	cm, err := controlplane.NewMetrics(cpReg)
	check(t, err)
	if err := cpReg.Register(controlplane.NewSandboxCollector(db)); err != nil {
		t.Fatal(err)
	}
	svc, err := controlplane.New(controlplane.Config{Logger: quiet(), Observer: cm, TracerProvider: tp,
		TeamQuotas: store.Quotas{MaxSandboxes: 1}}, db, agent.NewClient(agentSrv.Client(), agentSrv.URL, rpcTracing))
	if err != nil {
		t.Fatal(err)
	}
	apiM, err := api.NewMetrics(cpReg)
	check(t, err)
	apiSrv := httptest.NewServer(api.NewHandler(svc, controlplane.NewAuthenticator(db, nil),
		api.Options{Logger: quiet(), Observer: apiM, TracerProvider: tp}))
	t.Cleanup(apiSrv.Close)
	pm, err := proxy.NewMetrics(cpReg)
	check(t, err)
	px, err := proxy.New(proxy.Config{Logger: quiet(), Observer: pm}, svc)
	if err != nil {
		t.Fatal(err)
	}
	pxSrv := httptest.NewServer(px)
	t.Cleanup(pxSrv.Close)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- telemetry.ServeMetrics(mctx, ln, quiet(), process, cpReg, nodeReg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("metrics listener: %v", err)
		}
	})
	return &stack{api: apiSrv.URL, proxy: pxSrv.URL, metrics: "http://" + ln.Addr().String() + telemetry.MetricsPath,
		key: key, spans: exp, engine: eng}
}

// check fails t on a constructor's error.
func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// call makes an API request and returns its status and body.
func (s *stack) call(t *testing.T, method, path, body string) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, s.api+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-API-Key", s.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// create makes a sandbox through the API and returns its ID.
func (s *stack) create(t *testing.T) string {
	t.Helper()
	status, body := s.call(t, http.MethodPost, "/sandboxes", `{"templateID":"base","timeout":120}`)
	if status != http.StatusCreated {
		t.Fatalf("create: %d %s", status, body)
	}
	var sb struct {
		SandboxID string `json:"sandboxID"`
	}
	if err := json.Unmarshal(body, &sb); err != nil || sb.SandboxID == "" {
		t.Fatalf("create answered %s", body)
	}
	return sb.SandboxID
}

// throughProxy asks sandbox id's daemon for /health through the proxy.
func (s *stack) throughProxy(t *testing.T, id string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.proxy+"/health", nil)
	req.Header.Set(proxy.HeaderSandboxID, id)
	req.Header.Set(proxy.HeaderSandboxPort, strconv.Itoa(proxy.EnvdPort))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
