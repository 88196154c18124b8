package controlplane

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/controlplane/controlplanetest"
	"lelantos.dev/lelantos/internal/gen/agent/v1/agentv1connect"
	"lelantos.dev/lelantos/internal/proxy"
	"lelantos.dev/lelantos/internal/store"
)

// The generated agent client must fit Node, and Service must fit the proxy.
var (
	_ Node           = agentv1connect.AgentServiceClient(nil)
	_ proxy.Resolver = (*Service)(nil)
	_ Store          = (*store.DB)(nil)
	_ KeyStore       = (*store.DB)(nil)
)

// defTeam is the team of the harness's sandboxes and templates: the default
// team, as for everything made before teams.
const defTeam = store.DefaultTeamID

// fakeClock is a settable clock for tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// harness is a Service on a real SQLite file with a fake node and clock.
type harness struct {
	svc   *Service
	db    *store.DB
	node  *controlplanetest.Node
	clock *fakeClock
	path  string
	// tune, when set, changes the Service's configuration.
	tune func(*Config)
}

// newHarness opens a fresh store with templates "base" (public, no sizes), "big"
// (alias "large", 4 CPU, 1024 MB, 4096 MB, envd 0.6.9) and "wip" (building).
func newHarness(t testing.TB) *harness {
	t.Helper()
	return newTunedHarness(t, nil)
}

// newTunedHarness is newHarness with tune applied to the configuration.
func newTunedHarness(t testing.TB, tune func(*Config)) *harness {
	t.Helper()
	path := filepath.Join(t.TempDir(), "lelantos.db")
	h := &harness{
		node:  controlplanetest.NewNode(),
		clock: &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)},
		path:  path,
		tune:  tune,
	}
	h.open(t)
	ctx := context.Background()
	for _, tpl := range []*store.Template{
		{ID: "base", RootfsPath: "/var/lib/lelantos/base", Status: store.TemplateReady, Public: true},
		{ID: "big", RootfsPath: "/var/lib/lelantos/big", Status: store.TemplateReady, CPUCount: 4,
			MemoryMB: 1024, DiskSizeMB: 4096, EnvdVersion: "0.6.9", Aliases: []string{"large"}, StartCmd: "serve"},
		{ID: "wip", Status: store.TemplateBuilding},
	} {
		if err := h.db.PutTemplate(ctx, tpl); err != nil {
			t.Fatalf("put template %s: %v", tpl.ID, err)
		}
	}
	return h
}

// open (re)opens the store file and makes a new Service on it, as a restart
// does; the node is kept.
func (h *harness) open(t testing.TB) {
	t.Helper()
	db, err := store.Open(context.Background(), h.path)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	cfg := Config{
		Domain: "sb.example.test",
		Clock:  h.clock.Now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if h.tune != nil {
		h.tune(&cfg)
	}
	svc, err := New(cfg, db, h.node)
	if err != nil {
		t.Fatalf("new service: %v", err)
	}
	h.db, h.svc = db, svc
}

// create makes a sandbox or fails the test.
func (h *harness) create(t testing.TB, req CreateRequest) *store.Sandbox {
	t.Helper()
	sb, err := h.svc.Create(context.Background(), defTeam, req)
	if err != nil {
		t.Fatalf("create %+v: %v", req, err)
	}
	return sb
}

// stored reads a sandbox straight from the store (nil when absent).
func (h *harness) stored(t testing.TB, id string) *store.Sandbox {
	t.Helper()
	sb, err := h.db.GetSandbox(context.Background(), id)
	if err != nil {
		return nil
	}
	return sb
}

// storeFilterAll selects every stored sandbox.
func storeFilterAll() store.SandboxFilter { return store.SandboxFilter{} }
