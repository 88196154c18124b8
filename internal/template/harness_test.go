package template_test

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"lelantos.dev/lelantos/internal/engine"
	"lelantos.dev/lelantos/internal/engine/enginetest"
	"lelantos.dev/lelantos/internal/network"
	"lelantos.dev/lelantos/internal/runtime"
	"lelantos.dev/lelantos/internal/runtime/gvisor"
	"lelantos.dev/lelantos/internal/store"
	"lelantos.dev/lelantos/internal/template"
)

// harness is a real node: gVisor, a network manager, an engine, a store and a
// builder over one data directory.
type harness struct {
	dir     string
	db      *store.DB
	engine  *engine.Engine
	builder *template.Builder
	base    string
}

// TestMain builds envd once for the package's engines.
//
// Unlike enginetest.Main, the tests stay in the host's network namespace: RUN steps
// must reach the Debian mirror, which a private namespace cannot. The node's veths
// and iptables chains carry their own prefixes (ltpl, LTPL) so that they touch
// nothing of other nodes, and are removed at the end.
func TestMain(m *testing.M) {
	if os.Getenv(enginetest.EnvdEnv) == "" && os.Geteuid() == 0 {
		dir, err := os.MkdirTemp("", "template-envd-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		p, err := enginetest.BuildEnvd(dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Setenv(enginetest.EnvdEnv, p)
		code := m.Run()
		os.RemoveAll(dir)
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// newHarness builds a node.
func newHarness(t *testing.T) *harness { return newHarnessWith(t, nil) }

// newHarnessWith builds a node whose builder options edit changes.
func newHarnessWith(t *testing.T, edit func(*template.BuilderOptions)) *harness {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := t.TempDir()
	ctx := context.Background()
	nm, err := network.NewManager(ctx, network.Config{
		StateDir: filepath.Join(dir, "network"), Subnet: netip.MustParsePrefix("10.233.0.0/16"),
		NamePrefix: "ltpl", ChainPrefix: "LTPL",
	})
	if err != nil {
		t.Fatalf("network manager: %v", err)
	}
	g, err := gvisor.New(gvisor.Options{Runsc: filepath.Join(enginetest.CacheDir(), "bin/runsc"), StateDir: filepath.Join(dir, "runsc")})
	if err != nil {
		t.Fatalf("gvisor runtime: %v", err)
	}
	node := &enginetest.Node{DataDir: dir, NamePrefix: "ltpl", Network: nm,
		Runtimes: map[string]runtime.Runtime{gvisor.Class: g}, Envd: os.Getenv(enginetest.EnvdEnv)}
	t.Cleanup(func() {
		infos, _ := g.List(ctx)
		for _, i := range infos {
			_ = g.Kill(ctx, i.ID)
		}
		_ = nm.Reconcile(ctx, func(string) bool { return false })
		if err := nm.Uninstall(ctx); err != nil {
			t.Errorf("remove the test node's network: %v", err)
		}
		_ = exec.Command("umount", "-l", filepath.Join(dir, "runsc", "null-netns")).Run()
	})
	e := node.Engine(t)
	db, err := store.Open(ctx, filepath.Join(dir, "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	base := enginetest.BaseRootfs(t)
	opts := template.BuilderOptions{
		DataDir: dir, Store: db, Engine: e, Runtime: g, Network: nm,
		BaseRootfs: func() (string, error) { return base, nil },
	}
	if edit != nil {
		edit(&opts)
	}
	b, err := template.NewBuilder(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return &harness{dir: dir, db: db, engine: e, builder: b, base: base}
}

// syncBuffer collects a build's streamed log.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// writeContext makes a build context from name -> content; names ending in "*" are
// made executable (the star dropped).
func writeContext(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, "*") {
			name, mode = strings.TrimSuffix(name, "*"), 0o755
		}
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
