// Package enginetest builds real engines for tests: the pinned runsc, the base
// template's tree, envd built once per test binary and a network manager on a test
// subnet.
//
// A test binary using it calls Main from its TestMain. Main builds envd, then runs the
// tests again in a child process inside a private network namespace: the veths,
// iptables chains and ip_forward setting the engine makes stay out of the machine's own
// network namespace, which others share, and the "host" a sandbox must not reach is
// that namespace. Main's own process reaps the orphaned runsc processes at once, as a
// host's init does (runsc reports a sandbox stopped only once it is reaped).
package enginetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"lelantos.dev/lelantos/internal/engine"
	"lelantos.dev/lelantos/internal/network"
	"lelantos.dev/lelantos/internal/runtime"
	"lelantos.dev/lelantos/internal/runtime/gvisor"
	"lelantos.dev/lelantos/internal/runtime/runc"
)

// Environment variables Main passes to the tests it runs. EnvdEnv may also be set by
// hand to reuse an envd binary.
const (
	// EnvdEnv holds the path of the envd binary the tests' engines install.
	EnvdEnv = "LELANTOS_TEST_ENVD"
	// childEnv marks the test binary re-run inside its private network namespace.
	childEnv = "LELANTOS_ENGINETEST_CHILD"
)

// CacheDir is where the project's scripts keep runsc and the base tree.
func CacheDir() string {
	if d := os.Getenv("LELANTOS_CACHE_DIR"); d != "" {
		return d
	}
	return "/var/cache/lelantos"
}

// Main runs the tests of m and returns the exit code for os.Exit. As root it builds
// envd (unless EnvdEnv names one) and re-runs the test binary in a private network
// namespace; otherwise it runs the tests directly, and NewNode skips them.
func Main(m *testing.M) int {
	if os.Getenv(childEnv) != "" {
		if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "enginetest: bring up lo: %v: %s\n", err, out)
			return 1
		}
		return m.Run()
	}
	if os.Geteuid() != 0 {
		return m.Run()
	}
	env := append(os.Environ(), childEnv+"=1")
	if os.Getenv(EnvdEnv) == "" {
		dir, err := os.MkdirTemp("", "enginetest-envd-")
		if err != nil {
			fmt.Fprintf(os.Stderr, "enginetest: %v\n", err)
			return 1
		}
		defer os.RemoveAll(dir)
		p, err := BuildEnvd(dir)
		if err != nil {
			fmt.Fprintf(os.Stderr, "enginetest: %v\n", err)
			return 1
		}
		env = append(env, EnvdEnv+"="+p)
	}
	code, err := runChild(env)
	if err != nil {
		fmt.Fprintf(os.Stderr, "enginetest: re-run the tests in a private network namespace: %v\n", err)
		return 1
	}
	return code
}

// runChild runs the test binary again in a new network namespace and returns its exit
// code. Meanwhile this process is a child subreaper and reaps every orphan below it at
// once, as a host's init does: runsc's sandbox processes outlive the runsc command
// that started them, and runsc reports a sandbox stopped only once it is reaped.
func runChild(env []string) (int, error) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return 0, fmt.Errorf("become a subreaper: %w", err)
	}
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return 0, fmt.Errorf("wait for the tests: %w", err)
		case pid != cmd.Process.Pid:
			continue // an orphan, reaped
		case ws.Signaled():
			return 128 + int(ws.Signal()), nil
		default:
			return ws.ExitStatus(), nil
		}
	}
}

// BuildEnvd builds cmd/envd into dir and returns the binary's path.
func BuildEnvd(dir string) (string, error) {
	p := filepath.Join(dir, "envd")
	cmd := exec.Command("go", "build", "-o", p, "lelantos.dev/lelantos/cmd/envd")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build envd: %w: %s", err, out)
	}
	return p, nil
}

// BaseRootfs returns the base template's tree, built by scripts/build-base.sh (cached
// after the first build). LELANTOS_BASE_ROOTFS overrides it.
func BaseRootfs(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("LELANTOS_BASE_ROOTFS"); p != "" {
		return p
	}
	root, err := filepath.Abs(".")
	if err != nil {
		t.Fatalf("base template: %v", err)
	}
	for !fileExists(filepath.Join(root, "scripts/build-base.sh")) && root != "/" {
		root = filepath.Dir(root)
	}
	out, err := exec.Command("bash", filepath.Join(root, "scripts/build-base.sh")).Output()
	if err != nil {
		t.Fatalf("base template (scripts/build-base.sh): %v", err)
	}
	return strings.TrimSpace(string(out))
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// Node is one test node: its data directory and the parts an engine is built from.
type Node struct {
	DataDir string
	// NamePrefix starts the names of the node's veths and network namespaces.
	NamePrefix string
	Network    *network.Manager
	Runtimes   map[string]runtime.Runtime
	Envd       string
}

// NewNode prepares a node under a fresh directory. subnet must be unique among the
// nodes of all test binaries that may run at once (e.g. "10.232.1.0/24"): the node's
// namespace, veth and iptables chain names are derived from it, and namespaces are
// named in the host-wide /run/netns, so nodes never mistake each other's for strays.
func NewNode(t testing.TB, subnet string) *Node {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: sandboxes need namespaces, cgroups and mounts")
	}
	envd := os.Getenv(EnvdEnv)
	if os.Getenv(childEnv) == "" || envd == "" {
		t.Fatal("enginetest: call enginetest.Main from TestMain")
	}
	prefix, err := netip.ParsePrefix(subnet)
	if err != nil {
		t.Fatalf("enginetest: subnet: %v", err)
	}
	sum := sha256.Sum256([]byte(prefix.String()))
	tag := hex.EncodeToString(sum[:])[:5]
	dir := t.TempDir()
	ctx := context.Background()
	nm, err := network.NewManager(ctx, network.Config{
		StateDir: filepath.Join(dir, "network"), Subnet: prefix,
		NamePrefix: "l" + tag, ChainPrefix: "LT" + strings.ToUpper(tag),
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
	n := &Node{
		DataDir: dir, NamePrefix: "l" + tag, Network: nm,
		Runtimes: map[string]runtime.Runtime{gvisor.Class: g, runc.Class: r}, Envd: envd,
	}
	t.Cleanup(n.cleanup)
	return n
}

// Engine starts (or restarts) an engine on the node. It is closed when the test ends;
// close it earlier to simulate the node agent stopping.
func (n *Node) Engine(t testing.TB) *engine.Engine {
	t.Helper()
	return n.EngineWith(t, nil)
}

// EngineWith is Engine with options changed by edit first (e.g. warm pools).
func (n *Node) EngineWith(t testing.TB, edit func(*engine.Options)) *engine.Engine {
	t.Helper()
	opts := engine.Options{
		DataDir: n.DataDir, Runtimes: n.Runtimes, DefaultClass: gvisor.Class, Network: n.Network, EnvdPath: n.Envd,
	}
	if edit != nil {
		edit(&opts)
	}
	e, err := engine.New(context.Background(), opts)
	if err != nil {
		t.Fatalf("engine: %v", err)
	}
	t.Cleanup(e.Close)
	return e
}

// Close removes the node from the host now rather than when the test ends: its
// sandboxes, networks, firewall chains (and, if it is the host's last node,
// ip_forward as it was) and runsc's namespace mount. Close its engines first.
func (n *Node) Close() { n.cleanup() }

// cleanup removes whatever sandboxes the node still has, its networks and firewall
// chains, and runsc's namespace mount. It is idempotent.
func (n *Node) cleanup() {
	ctx := context.Background()
	for _, rt := range n.Runtimes {
		infos, _ := rt.List(ctx)
		for _, i := range infos {
			_ = rt.Kill(ctx, i.ID)
		}
	}
	_ = n.Network.Reconcile(ctx, func(string) bool { return false })
	_ = n.Network.Uninstall(ctx)
	_ = n.Network.Uninstall(ctx)
	// runsc may have mounted its namespace more than once, stacked.
	for range 16 {
		if unix.Unmount(filepath.Join(n.DataDir, runscNullNetNS), unix.MNT_DETACH) != nil {
			break
		}
	}
}
