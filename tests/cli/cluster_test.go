package cli

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/engine/enginetest"
)

// The second node's own subnet and interface prefix.
const (
	nodeSubnet    = "10.226.0.0/16"
	nodeNetPrefix = "lcln"
)

// listedNode is a node as `nodes --json` prints it.
type listedNode struct {
	ID, Status   string
	SandboxCount int
}

// TestTwoNodes: a server that takes remote nodes and a `lelantos node` on
// this machine, both with the cluster CA of `lelantos certs init`: the node
// reports itself, creates land on both nodes, and a sandbox on the remote
// node runs commands, moves files, pauses and resumes through the server's
// proxy and the node's tunnel; a node that stops reporting is unhealthy.
func TestTwoNodes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: sandboxes use namespaces, cgroups and iptables")
	}
	tlsDir := filepath.Join(t.TempDir(), "cluster-tls")
	if out, err := exec.Command(buildLelantos(t), "certs", "init", tlsDir, "--hosts", "127.0.0.1").CombinedOutput(); err != nil {
		t.Fatalf("certs init: %v: %s", err, out)
	}
	clusterAddr := freeAddr(t)
	s := startServer(t, "--cluster-listen", clusterAddr, "--cluster-tls-dir", tlsDir)
	stopNode := startNodeProcess(t, s, clusterAddr, tlsDir)
	waitNodes(t, s, "both nodes ready", func(n map[string]listedNode) bool {
		return n["local"].Status == "ready" && n["node"].Status == "ready"
	})

	// Each create goes to the node with the most free memory of those it
	// samples: with two equal nodes, four creates land on both.
	var ids []string
	for range 4 {
		ids = append(ids, s.create(t))
	}
	waitNodes(t, s, "the four sandboxes on both nodes", func(n map[string]listedNode) bool {
		return n["local"].SandboxCount >= 1 && n["node"].SandboxCount >= 1 && n["local"].SandboxCount+n["node"].SandboxCount == 4
	})
	for _, id := range ids {
		if out := s.ok(t, "sandbox", "exec", id, "--", "echo", "hi from "+id); out != "hi from "+id+"\n" {
			t.Fatalf("exec in %s printed %q", id, out)
		}
	}

	// A sandbox only the remote node may take: the local node drains.
	s.ok(t, "nodes", "drain", "local")
	remote := s.create(t)
	s.ok(t, "nodes", "ready", "local")
	waitNodes(t, s, "the fifth sandbox on the remote node", func(n map[string]listedNode) bool {
		return n["node"].SandboxCount+n["local"].SandboxCount == 5 && n["node"].SandboxCount >= 2
	})
	src := filepath.Join(t.TempDir(), "greeting.txt")
	if err := os.WriteFile(src, []byte("through the tunnel\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.ok(t, "sandbox", "cp", src, remote+":/tmp/greeting.txt")
	s.ok(t, "sandbox", "exec", remote, "--", "sh", "-c", "echo kept in memory > /dev/shm/mark")
	s.ok(t, "sandbox", "pause", remote)
	s.ok(t, "sandbox", "resume", remote)
	if out := s.ok(t, "sandbox", "exec", remote, "--", "cat", "/tmp/greeting.txt", "/dev/shm/mark"); out != "through the tunnel\nkept in memory\n" {
		t.Fatalf("after pause and resume on the remote node the sandbox holds %q", out)
	}

	for _, id := range append(ids, remote) {
		s.ok(t, "sandbox", "kill", id)
	}
	waitNodes(t, s, "no sandbox left", func(n map[string]listedNode) bool {
		return n["local"].SandboxCount == 0 && n["node"].SandboxCount == 0
	})
	// A node that stops reporting is unhealthy after three heartbeats.
	stopNode()
	waitNodes(t, s, "the stopped node unhealthy", func(n map[string]listedNode) bool {
		return n["node"].Status == "unhealthy" && n["local"].Status == "ready"
	})
}

// waitNodes polls `nodes --json` for up to 40 s until ok holds.
func waitNodes(t *testing.T, s *server, what string, ok func(map[string]listedNode) bool) {
	t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	for {
		n := nodesNow(t, s)
		if ok(n) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: nodes are %+v\n%s", what, n, s.logText())
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// startNodeProcess runs `lelantos node` joining the server's cluster
// endpoint at clusterAddr and returns what stops it with SIGTERM (also run
// when the test ends).
func startNodeProcess(t *testing.T, s *server, clusterAddr, tlsDir string) (stop func()) {
	t.Helper()
	data := filepath.Join(t.TempDir(), "node-data")
	logPath := filepath.Join(t.TempDir(), "node.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(s.bin, "node", "--join", "https://"+clusterAddr, "--tls-dir", tlsDir, "--listen", freeAddr(t),
		"--data-dir", data, "--subnet", nodeSubnet, "--net-prefix", nodeNetPrefix, "--warm-pool", "0",
		"--base-rootfs", enginetest.BaseRootfs(t), "--runsc", filepath.Join(enginetest.CacheDir(), "bin", "runsc"),
		"--envd", os.Getenv(enginetest.EnvdEnv))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the node: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case err := <-exited:
				if err != nil {
					b, _ := os.ReadFile(logPath)
					t.Errorf("the node ended with %v\n%s", err, b)
				}
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				t.Errorf("the node did not stop within 30s of SIGTERM")
			}
			if err := unmountUnder(data); err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// nodesNow returns `nodes --json`, by ID.
func nodesNow(t *testing.T, s *server) map[string]listedNode {
	t.Helper()
	var nodes []listedNode
	out := s.ok(t, "nodes", "--json")
	if err := json.Unmarshal([]byte(out), &nodes); err != nil {
		t.Fatalf("nodes --json printed %q: %v", out, err)
	}
	byID := map[string]listedNode{}
	for _, n := range nodes {
		byID[n.ID] = n
	}
	return byID
}
