// Package enginetest builds real engines for tests: the pinned runsc, the base
// template's tree, a freshly built envd and a network manager on a test subnet.
package enginetest

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"lelantos.dev/lelantos/internal/engine"
	"lelantos.dev/lelantos/internal/network"
	"lelantos.dev/lelantos/internal/runtime"
	"lelantos.dev/lelantos/internal/runtime/gvisor"
	"lelantos.dev/lelantos/internal/runtime/runc"
)

// CacheDir is where the project's scripts keep runsc and the base tree.
func CacheDir() string {
	if d := os.Getenv("LELANTOS_CACHE_DIR"); d != "" {
		return d
	}
	return "/var/cache/lelantos"
}

// BaseRootfs returns the base template's tree, built by scripts/build-base.sh.
func BaseRootfs(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("LELANTOS_BASE_ROOTFS"); p != "" {
		return p
	}
	root, _ := filepath.Abs("../..")
	for !fileExists(filepath.Join(root, "scripts/build-base.sh")) && root != "/" {
		root = filepath.Dir(root)
	}
	out, err := exec.Command("bash", filepath.Join(root, "scripts/build-base.sh")).Output()
	if err != nil {
		t.Fatalf("base template (scripts/build-base.sh): %v", err)
	}
	return string(bytesTrim(out))
}

func bytesTrim(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

var envdOnce = struct {
	sync.Once
	path string
	err  error
}{}

// Envd builds cmd/envd once per test binary and returns the binary's path.
func Envd(t testing.TB) string {
	t.Helper()
	envdOnce.Do(func() {
		dir, err := os.MkdirTemp("", "enginetest-envd-")
		if err != nil {
			envdOnce.err = err
			return
		}
		p := filepath.Join(dir, "envd")
		cmd := exec.Command("go", "build", "-o", p, "lelantos.dev/lelantos/cmd/envd")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			envdOnce.err = fmt.Errorf("build envd: %v: %s", err, out)
			return
		}
		envdOnce.path = p
	})
	if envdOnce.err != nil {
		t.Fatal(envdOnce.err)
	}
	return envdOnce.path
}

// Node is one test node: its data directory and the parts an engine is built from.
type Node struct {
	DataDir  string
	Network  *network.Manager
	Runtimes map[string]runtime.Runtime
	Envd     string
}

// NewNode prepares a node under a fresh directory; subnet must be unique per test
// binary (e.g. "10.232.0.0/16").
func NewNode(t testing.TB, subnet string) *Node {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	nm, err := network.NewManager(ctx, network.Config{
		StateDir: filepath.Join(dir, "network"), Subnet: netip.MustParsePrefix(subnet),
	})
	if err != nil {
		t.Fatalf("network manager: %v", err)
	}
	g, err := gvisor.New(gvisor.Options{Runsc: filepath.Join(CacheDir(), "bin/runsc"), StateDir: filepath.Join(dir, "runsc")})
	if err != nil {
		t.Fatalf("gvisor runtime: %v", err)
	}
	r, err := runc.New(runc.Options{StateDir: filepath.Join(dir, "runc")})
	if err != nil {
		t.Fatalf("runc runtime: %v", err)
	}
	n := &Node{DataDir: dir, Network: nm, Runtimes: map[string]runtime.Runtime{"gvisor": g, "runc": r}, Envd: Envd(t)}
	t.Cleanup(func() { n.cleanup() })
	return n
}

// Engine starts (or restarts) an engine on the node.
func (n *Node) Engine(t testing.TB) *engine.Engine {
	t.Helper()
	e, err := engine.New(context.Background(), engine.Options{
		DataDir: n.DataDir, Runtimes: n.Runtimes, DefaultClass: "gvisor", Network: n.Network, EnvdPath: n.Envd,
	})
	if err != nil {
		t.Fatalf("engine: %v", err)
	}
	return e
}

// cleanup removes whatever sandboxes the node still has, and runsc's namespace mount.
func (n *Node) cleanup() {
	ctx := context.Background()
	for _, rt := range n.Runtimes {
		infos, _ := rt.List(ctx)
		for _, i := range infos {
			_ = rt.Kill(ctx, i.ID)
		}
	}
	_ = n.Network.Reconcile(ctx, func(string) bool { return false })
	_ = exec.Command("umount", "-l", filepath.Join(n.DataDir, "runsc", "null-netns")).Run()
}
