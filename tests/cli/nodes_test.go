package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// testNodes: `nodes` lists the local node with the sandboxes it holds, `nodes
// drain` stops creates on it while sandbox a goes on, `nodes ready` takes
// creates again; a bad command line is a usage error.
func testNodes(t *testing.T, s *server, a string) {
	var nodes []struct {
		ID, Status   string
		SandboxCount int
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		out := s.ok(t, "nodes", "--json")
		if err := json.Unmarshal([]byte(out), &nodes); err != nil {
			t.Fatalf("nodes --json printed %q: %v", out, err)
		}
		if len(nodes) == 1 && nodes[0].SandboxCount >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nodes --json = %s; want the local node with the test's two sandboxes", out)
		}
	}
	if nodes[0].ID != "local" || nodes[0].Status != "ready" {
		t.Fatalf("nodes: %+v, want local ready", nodes)
	}
	table := s.ok(t, "nodes")
	if !strings.HasPrefix(table, "ID") || !strings.Contains(table, "local") || !strings.Contains(table, "ready") {
		t.Fatalf("nodes printed %q", table)
	}
	if out := s.ok(t, "nodes", "drain", "local"); out != "node local is draining\n" {
		t.Fatalf("nodes drain printed %q", out)
	}
	r := s.cli(t, "sandbox", "create")
	if r.code != 1 || !strings.Contains(r.stderr, "draining") {
		t.Fatalf("create on a draining node: exit %d, stderr %q, stdout %q", r.code, r.stderr, r.stdout)
	}
	if out := s.ok(t, "sandbox", "exec", a, "--", "echo", "still here"); out != "still here\n" {
		t.Fatalf("exec in a sandbox of the draining node printed %q", out)
	}
	if out := s.ok(t, "nodes", "ready", "local"); out != "node local is ready\n" {
		t.Fatalf("nodes ready printed %q", out)
	}
	s.create(t)
	for _, args := range [][]string{{"nodes", "drain"}, {"nodes", "bogus"}, {"nodes", "ready", "a", "b"}} {
		if r := s.cli(t, args...); r.code != 2 || !strings.Contains(r.stderr, "usage: lelantos nodes") {
			t.Errorf("lelantos %s: exit %d, stderr %q; want a usage error", strings.Join(args, " "), r.code, r.stderr)
		}
	}
	if r := s.cli(t, "nodes", "drain", "elsewhere"); r.code != 1 || !strings.Contains(r.stderr, "not found") {
		t.Errorf("nodes drain of an unknown node: exit %d, stderr %q", r.code, r.stderr)
	}
}
