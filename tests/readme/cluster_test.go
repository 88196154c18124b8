package readme

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// clusterReady is what `make cluster` prints when the cluster is ready.
var clusterReady = []string{"Lelantos is ready: a cluster", "API:", "Sandbox URL:", "API key:"}

// TestMakeCluster: `make cluster` from a fresh clone, with no flags and no
// environment, starts PostgreSQL, two control-plane replicas behind one API
// address and two nodes; the e2b client, configured from .lelantos/client.env
// as `make run` configures it, creates sandboxes that land on both nodes, runs
// commands in them, pauses and resumes one with its memory; SIGTERM stops it
// all.
func TestMakeCluster(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: make cluster starts sandboxes (namespaces, cgroups, iptables)")
	}
	for _, port := range []string{"3000", "3001", "3903", "3911", "3912"} {
		if ln, err := net.Listen("tcp", "127.0.0.1:"+port); err != nil {
			t.Fatalf("port %s is taken: make cluster needs it: %v", port, err)
		} else {
			ln.Close()
		}
	}
	clone := cloneRepo(t)
	// The database is where the postgres user reaches it, named after the
	// clone's cluster directory.
	sum := sha256.Sum256([]byte(filepath.Join(clone, ".lelantos-cluster")))
	t.Cleanup(func() { os.RemoveAll("/var/lib/lelantos/cluster/pg-" + hex.EncodeToString(sum[:])[:12]) })
	srv := startMake(t, clone, "cluster", clusterReady)
	got := runNode(t, clone, `
const {Sandbox} = require('e2b')
const nodes = async () => (await fetch(process.env.E2B_API_URL + '/nodes', {headers: {'X-API-Key': process.env.E2B_API_KEY}})).json()
const until = async (what, ok) => {
  for (let i = 0; i < 120; i++) { const n = await nodes(); if (ok(n)) return n; await new Promise(r => setTimeout(r, 500)) }
  throw new Error(what + ': ' + JSON.stringify(await nodes()))
}
;(async () => {
  await until('two ready nodes', n => n.length === 2 && n.every(x => x.status === 'ready'))
  const boxes = []
  for (let i = 0; i < 4; i++) boxes.push(await Sandbox.create({timeoutMs: 300000}))
  const out = []
  for (const s of boxes) out.push((await s.commands.run('echo hi')).stdout.trim())
  await until('sandboxes on both nodes', n => n.every(x => x.sandboxCount >= 1))
  const s = boxes[0]
  await s.commands.run('echo in memory > /dev/shm/mark')
  await s.pause()
  const back = await Sandbox.connect(s.sandboxId)
  out.push((await back.commands.run('cat /dev/shm/mark')).stdout.trim())
  for (const b of boxes) await b.kill()
  console.log(out.join(','))
})().catch(e => { console.error(e); process.exit(1) })`)
	if strings.TrimSpace(got) != "hi,hi,hi,hi,in memory" {
		t.Fatalf("through the cluster the client got %q", got)
	}
	srv.end(t)
	if !strings.Contains(srv.out.Tail(20), "stopping the cluster") {
		t.Fatalf("make cluster did not stop on SIGTERM; its output:\n%s", srv.out.Tail(40))
	}
}
