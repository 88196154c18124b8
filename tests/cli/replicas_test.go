package cli

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/store/pgtest"
)

// TestReplicas: two control-plane replicas without nodes of their own, on one
// PostgreSQL database and one API address (SO_REUSEPORT), and two `lelantos
// node`s, each in a network namespace of its own as on a machine of its
// own: creates land on both nodes, the proxy of either replica reaches
// sandboxes on both, a sandbox paused on a node that stops resumes on the
// other with its memory, and a replica that crashes mid-traffic loses no
// sandbox and no request beyond those it was serving.
func TestReplicas(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: sandboxes use namespaces, cgroups and iptables")
	}
	ctx := context.Background()
	pg, err := pgtest.Start(ctx, false)
	if err != nil {
		t.Fatalf("start PostgreSQL: %v", err)
	}
	t.Cleanup(func() { _ = pg.Stop() })
	_, dbURL, err := pg.CreateDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bin := buildLelantos(t)
	// Each node's machine: a namespace whose only way out is its link to
	// the host, where the replicas' cluster endpoint listens.
	nsA := nodeNetns(t, "lcrna", "10.229.1.1", "10.229.1.2")
	nsB := nodeNetns(t, "lcrnb", "10.229.2.1", "10.229.2.2")
	tlsDir := filepath.Join(t.TempDir(), "cluster-tls")
	for _, args := range [][]string{
		{"certs", "init", tlsDir, "--hosts", "10.229.1.2,10.229.1.1,10.229.2.1"},
		{"certs", "node", tlsDir, "node-b", "--hosts", "10.229.2.2"},
	} {
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	apiAddr, images := freeAddr(t), t.TempDir()
	_, clusterPort, _ := net.SplitHostPort(freeAddr(t))
	replica := func() *server {
		return startServer(t, "--no-node", "--store", dbURL, "--reuse-port", "--listen", apiAddr,
			"--cluster-listen", "0.0.0.0:"+clusterPort, "--cluster-tls-dir", tlsDir, "--images-dir", images)
	}
	r1 := replica()
	r2 := replica()
	// The first replica made the admin key; the second uses it too.
	r2.env = append(r2.env, "E2B_API_KEY="+r1.vars["E2B_API_KEY"])
	a := &nodeProc{data: filepath.Join(t.TempDir(), "a"), listen: "10.229.1.2:3930", join: "10.229.1.1:" + clusterPort, tlsDir: tlsDir,
		subnet: "10.228.0.0/16", prefix: "lcna", netns: nsA}
	b := &nodeProc{data: filepath.Join(t.TempDir(), "b"), listen: "10.229.2.2:3930", join: "10.229.2.1:" + clusterPort, tlsDir: tlsDir,
		name: "node-b", subnet: "10.227.0.0/16", prefix: "lcnb", netns: nsB}
	stopA := a.start(t, r1)
	b.start(t, r1)
	waitNodes(t, r1, "both nodes ready", func(n map[string]listedNode) bool {
		_, own := n["local"]
		return n["node"].Status == "ready" && n["node-b"].Status == "ready" && !own
	})

	var ids []string
	for range 4 {
		ids = append(ids, r1.create(t))
	}
	waitNodes(t, r1, "the sandboxes on both nodes", func(n map[string]listedNode) bool {
		return n["node"].SandboxCount >= 1 && n["node-b"].SandboxCount >= 1
	})
	for _, id := range ids {
		for i, r := range []*server{r1, r2} {
			if h := proxyGet(t, r, id, 49983, "/health"); h.code/100 != 2 {
				t.Fatalf("the proxy of replica %d to sandbox %s: %d %q", i+1, id, h.code, h.body)
			}
		}
	}

	// Paused on node A, resumed on node B once A stops.
	r1.ok(t, "nodes", "drain", "node-b")
	mover := r1.create(t)
	r1.ok(t, "nodes", "ready", "node-b")
	r1.ok(t, "sandbox", "exec", mover, "--", "sh", "-c", "echo kept across nodes > /dev/shm/mark")
	r1.ok(t, "sandbox", "pause", mover)
	waitLog(t, r1, mover, "image of the pause kept by the control plane")
	stopA()
	r2.ok(t, "sandbox", "resume", mover)
	waitLog(t, r2, mover, "resumed on node node-b")
	if out := r2.ok(t, "sandbox", "exec", mover, "--", "cat", "/dev/shm/mark"); out != "kept across nodes\n" {
		t.Fatalf("the sandbox resumed on node B holds %q", out)
	}
	a.start(t, r1)
	waitNodes(t, r2, "node A back", func(n map[string]listedNode) bool { return n["node"].Status == "ready" })

	// Replica 1 crashes while requests keep coming to the shared address.
	var done, failed atomic.Int64
	stop := make(chan struct{})
	traffic := make(chan struct{})
	go func() {
		defer close(traffic)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if r := r2.cli(t, "sandbox", "ls", "--json"); r.code != 0 {
				failed.Add(1)
			}
			done.Add(1)
		}
	}()
	time.Sleep(2 * time.Second)
	r1.kill(t)
	time.Sleep(3 * time.Second)
	close(stop)
	<-traffic
	if done.Load() < 5 {
		t.Fatalf("only %d requests ran around the crash", done.Load())
	}
	if failed.Load() > 2 {
		t.Fatalf("%d of %d requests failed around the crash of a replica; want at most the in-flight ones", failed.Load(), done.Load())
	}
	listed := listed(t, r2)
	for _, id := range append(ids, mover) {
		if !strings.Contains(strings.Join(listed, " "), id) {
			t.Fatalf("sandbox %s is gone after the crash of a replica: %v", id, listed)
		}
		if out := r2.ok(t, "sandbox", "exec", id, "--", "echo", "ok"); out != "ok\n" {
			t.Fatalf("exec in %s after the crash: %q", id, out)
		}
	}
	for _, id := range append(ids, mover) {
		r2.ok(t, "sandbox", "kill", id)
	}
}
