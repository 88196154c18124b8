package cli

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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
	ID, Status                       string
	SandboxCount, PausedSandboxCount int
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
	node := &nodeProc{data: filepath.Join(t.TempDir(), "node-data"), listen: freeAddr(t), join: clusterAddr, tlsDir: tlsDir,
		metrics: freeAddr(t)}
	stopNode := node.start(t, s)
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
	// The node serves its own metrics.
	res, err := http.Get("http://" + node.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(metrics), `lelantos_node_sandboxes{state="running"}`) {
		t.Fatalf("the node's /metrics lacks its sandboxes:\n%.2000s", metrics)
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

	// A template built on the server's node reaches the remote node by its
	// tree's name: the node fetches the tree and starts the sandbox from it.
	ctxDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte("FROM base\nRUN echo built on the server > /etc/built-here\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.ok(t, "template", "build", "-n", "cluster-tpl", ctxDir)
	s.ok(t, "nodes", "drain", "local")
	fromTemplate := s.create(t, "--template", "cluster-tpl")
	s.ok(t, "nodes", "ready", "local")
	if out := s.ok(t, "sandbox", "exec", fromTemplate, "--", "cat", "/etc/built-here"); out != "built on the server\n" {
		t.Fatalf("a sandbox of the built template on the remote node reads %q", out)
	}
	if fetched, _ := filepath.Glob(filepath.Join(node.data, "node", "artifacts", "*", "tree", "etc", "built-here")); len(fetched) != 1 {
		t.Fatalf("the remote node holds no fetched tree of the template: %v", fetched)
	}
	s.ok(t, "sandbox", "kill", fromTemplate)

	// A sandbox paused on the remote node has its image kept by the server:
	// with the node stopped, it resumes on the server's node with its memory
	// (a file in /dev/shm and a process) and its files.
	s.ok(t, "nodes", "drain", "local")
	mover := s.create(t)
	s.ok(t, "nodes", "ready", "local")
	s.ok(t, "sandbox", "exec", mover, "--", "sh", "-c", "echo moved in memory > /dev/shm/mark; echo on disk > $HOME/file; (sleep 1000 & echo $! > /tmp/pid)")
	s.ok(t, "sandbox", "pause", mover)
	waitLog(t, s, mover, "image of the pause kept by the control plane")
	waitNodes(t, s, "the paused sandbox on the remote node", func(n map[string]listedNode) bool { return n["node"].PausedSandboxCount == 1 })

	// A snapshot taken on the remote node is kept by the server too: with
	// the node stopped, sandboxes start from it on the server's node.
	snapshot := snapshotOf(t, s, remote)

	// Forks of a sandbox whose node drains start on another node, from one
	// snapshot of the source that the server copies: each has the source's
	// memory, and the source runs on where it was.
	s.ok(t, "nodes", "drain", "node")
	forks := forkOf(t, s, remote, 2)
	s.ok(t, "nodes", "ready", "node")
	for _, f := range forks {
		waitLog(t, s, f, "running on node local")
		if out := s.ok(t, "sandbox", "exec", f, "--", "cat", "/dev/shm/mark", "/tmp/greeting.txt"); out != "kept in memory\nthrough the tunnel\n" {
			t.Fatalf("a fork started on the other node holds %q", out)
		}
		s.ok(t, "sandbox", "kill", f)
	}
	waitLog(t, s, remote, "forked into 2 sandbox(es), 2 of them on other nodes")
	if out := s.ok(t, "sandbox", "exec", remote, "--", "cat", "/dev/shm/mark"); out != "kept in memory\n" {
		t.Fatalf("the source after its forks moved holds %q", out)
	}

	// A node that stops reporting is unhealthy after three heartbeats: its
	// sandboxes are out of reach, with a message and a line in their logs
	// that say why, and back, memory and all, when it reports again.
	stopNode()
	waitNodes(t, s, "the stopped node unhealthy", func(n map[string]listedNode) bool {
		return n["node"].Status == "unhealthy" && n["local"].Status == "ready"
	})
	if r := s.cli(t, "sandbox", "exec", remote, "--", "true"); r.code == 0 || !strings.Contains(r.stderr, "503") {
		t.Fatalf("exec on a lost node: exit %d, stderr %q; want the proxy's 503", r.code, r.stderr)
	}
	if r := s.cli(t, "sandbox", "pause", remote); r.code == 0 || !strings.Contains(r.stderr, "node node is lost") {
		t.Fatalf("pause on a lost node: exit %d, stderr %q; want the node named lost", r.code, r.stderr)
	}
	health := proxyGet(t, s, remote, 49983, "/health")
	if health.code != 503 || !strings.Contains(health.body, "node node is lost") {
		t.Fatalf("the proxy on a lost node answers %d %q; want 503 naming the node lost", health.code, health.body)
	}
	waitLog(t, s, remote, "node node lost")
	s.ok(t, "sandbox", "resume", mover)
	waitLog(t, s, mover, "resumed on node local from the image kept at its pause")
	if out := s.ok(t, "sandbox", "exec", mover, "--", "sh", "-c", "cat /dev/shm/mark $HOME/file && kill -0 $(cat /tmp/pid) && echo alive"); out != "moved in memory\non disk\nalive\n" {
		t.Fatalf("the sandbox resumed on another node holds %q", out)
	}
	fromSnapshot := s.create(t, "--template", snapshot)
	if out := s.ok(t, "sandbox", "exec", fromSnapshot, "--", "cat", "/dev/shm/mark"); out != "kept in memory\n" {
		t.Fatalf("a sandbox from the kept snapshot holds %q", out)
	}
	waitLog(t, s, fromSnapshot, "running on node local")
	s.ok(t, "sandbox", "kill", fromSnapshot)
	node.start(t, s)
	waitNodes(t, s, "the node ready again", func(n map[string]listedNode) bool { return n["node"].Status == "ready" })
	waitLog(t, s, remote, "node node reported again")
	if out := s.ok(t, "sandbox", "exec", remote, "--", "cat", "/dev/shm/mark"); out != "kept in memory\n" {
		t.Fatalf("after the node came back the sandbox holds %q", out)
	}
	// The node drops its copy of the sandbox that moved.
	waitNodes(t, s, "the moved sandbox gone from the remote node", func(n map[string]listedNode) bool {
		return n["node"].PausedSandboxCount == 0
	})

	for _, id := range append(ids, remote, mover) {
		s.ok(t, "sandbox", "kill", id)
	}
	waitNodes(t, s, "no sandbox left", func(n map[string]listedNode) bool {
		return n["local"].SandboxCount == 0 && n["node"].SandboxCount == 0
	})
}

// snapshotOf takes a snapshot of sandbox id through the API and returns the
// ID to create sandboxes from it.
func snapshotOf(t *testing.T, s *server, id string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.vars["E2B_API_URL"]+"/sandboxes/"+id+"/snapshots", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-API-Key", s.vars["E2B_API_KEY"])
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct{ SnapshotID string }
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusCreated || json.Unmarshal(b, &body) != nil || body.SnapshotID == "" {
		t.Fatalf("snapshot of %s: %d %s", id, res.StatusCode, b)
	}
	return body.SnapshotID
}

// forkOf forks sandbox id count times through the API and returns the
// forks' IDs; every fork must start.
func forkOf(t *testing.T, s *server, id string, count int) []string {
	t.Helper()
	body := strings.NewReader(fmt.Sprintf(`{"count":%d,"timeout":600}`, count))
	req, err := http.NewRequest(http.MethodPost, s.vars["E2B_API_URL"]+"/sandboxes/"+id+"/fork", body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-API-Key", s.vars["E2B_API_KEY"])
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var results []struct {
		Sandbox *struct{ SandboxID string }
		Error   *struct {
			Code    int
			Message string
		}
	}
	if res.StatusCode != http.StatusCreated || json.Unmarshal(b, &results) != nil || len(results) != count {
		t.Fatalf("fork of %s: %d %s", id, res.StatusCode, b)
	}
	var ids []string
	for i, r := range results {
		if r.Sandbox == nil || r.Sandbox.SandboxID == "" {
			t.Fatalf("fork %d of %s failed: %s", i, id, b)
		}
		ids = append(ids, r.Sandbox.SandboxID)
	}
	return ids
}

// answer is an HTTP status and body.
type answer struct {
	code int
	body string
}

// proxyGet asks the server's sandbox proxy for path on port of sandbox id.
func proxyGet(t *testing.T, s *server, id string, port int, path string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.vars["E2B_SANDBOX_URL"]+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("E2b-Sandbox-Id", id)
	req.Header.Set("E2b-Sandbox-Port", strconv.Itoa(port))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return answer{res.StatusCode, string(b)}
}

// waitLog polls `sandbox logs ID` for up to 40 s until it holds want.
func waitLog(t *testing.T, s *server, id, want string) {
	t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	for {
		out := s.ok(t, "sandbox", "logs", id)
		if strings.Contains(out, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the logs of %s never held %q:\n%s", id, want, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
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

// nodeProc is a `lelantos node` of the test: its data directory and
// address stay across restarts, as a machine's would.
type nodeProc struct {
	data, listen, join, tlsDir string
	// name is its certificate's ("" for node), subnet and prefix its
	// network's ("" for nodeSubnet and nodeNetPrefix); metrics, when set,
	// its /metrics address.
	name, subnet, prefix, metrics string
	// netns, when set, is the network namespace (a path) the node runs in,
	// as on a machine of its own (nodeNetns).
	netns string
	// stop stops the running process (nil before the first start);
	// stopped is set once it did.
	stop    func()
	stopped bool
}

// start runs the node and returns what stops it with SIGTERM. The first
// start also stops the node that runs when the test ends, after the
// sandboxes made since are killed.
func (n *nodeProc) start(t *testing.T, s *server) (stop func()) {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "node.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	name, subnet, prefix := cmp.Or(n.name, "node"), cmp.Or(n.subnet, nodeSubnet), cmp.Or(n.prefix, nodeNetPrefix)
	argv := []string{s.bin, "node", "--join", "https://" + n.join, "--tls-dir", n.tlsDir, "--listen", n.listen, "--name", name,
		"--data-dir", n.data, "--subnet", subnet, "--net-prefix", prefix, "--warm-pool", "0",
		"--base-rootfs", enginetest.BaseRootfs(t), "--runsc", filepath.Join(enginetest.CacheDir(), "bin", "runsc"),
		"--envd", os.Getenv(enginetest.EnvdEnv), "--metrics-listen", n.metrics}
	if n.netns != "" {
		// nsenter joins the namespace and execs the node: the process is
		// the node's, signals and all.
		argv = append([]string{"nsenter", "--net=" + n.netns, "--"}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
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
		})
	}
	if n.stop == nil {
		t.Cleanup(func() {
			if n.stopped {
				// A test that failed with the node stopped: the kills
				// of its sandboxes wait for the node to report again.
				n.start(t, s)
				n.drained(t, s)
			}
			n.stop()
			// runsc keeps a namespace mount in the node's state
			// directory for the node's life.
			if err := enginetest.UnmountUnder(n.data); err != nil {
				t.Error(err)
			}
		})
	}
	n.stopped = false
	end := stop
	n.stop = func() { end(); n.stopped = true }
	return n.stop
}

// nodeNetns makes a network namespace standing in for a machine of its own:
// named name, joined to the host by a veth pair, the host's end at hostIP
// and the namespace's at nsIP (both /30), its default route through the
// host. It is removed when the test ends; it returns its path.
func nodeNetns(t *testing.T, name, hostIP, nsIP string) string {
	t.Helper()
	script := fmt.Sprintf(`set -e
ip netns add %[1]s
ip link add %[1]sh type veth peer name %[1]sn
ip link set %[1]sn netns %[1]s
ip addr add %[2]s/30 dev %[1]sh
ip link set %[1]sh up
ip netns exec %[1]s ip addr add %[3]s/30 dev %[1]sn
ip netns exec %[1]s ip link set %[1]sn up
ip netns exec %[1]s ip link set lo up
ip netns exec %[1]s ip route add default via %[2]s`, name, hostIP, nsIP)
	t.Cleanup(func() {
		_ = exec.Command("sh", "-c", fmt.Sprintf("ip netns del %[1]s; ip link del %[1]sh", name)).Run()
	})
	if out, err := exec.Command("sh", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("the namespace of node %s: %v: %s", name, err, out)
	}
	return "/run/netns/" + name
}

// drained waits up to 40 s for the node to hold no sandbox, as the server's
// reconciliation leaves it once the sandboxes killed meanwhile are removed.
func (n *nodeProc) drained(t *testing.T, s *server) {
	name := cmp.Or(n.name, "node")
	for deadline := time.Now().Add(40 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		if r := s.cli(t, "nodes", "--json"); r.code == 0 {
			var nodes []listedNode
			if json.Unmarshal([]byte(r.stdout), &nodes) == nil {
				for _, x := range nodes {
					if x.ID == name && x.Status == "ready" && x.SandboxCount+x.PausedSandboxCount == 0 {
						return
					}
				}
			}
		}
	}
	t.Errorf("node %s still holds sandboxes after the test's kills", name)
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
