package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
)

// fakeTunnel stands for one node: it dials its own backend for every
// sandbox, whatever address the sandbox has, and counts its dials.
type fakeTunnel struct {
	port  int
	mu    sync.Mutex
	dials map[string]int // by sandbox ID
}

func (f *fakeTunnel) DialSandbox(ctx context.Context, id string, _ int) (net.Conn, error) {
	f.mu.Lock()
	f.dials[id]++
	f.mu.Unlock()
	var d net.Dialer
	return d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(f.port)))
}

// TestTunnelsKeepNodesApart: two sandboxes on two nodes with the same
// private address are each reached through their own node's tunnel, and a
// connection kept for one is never reused for the other, however often
// both are asked in turn.
func TestTunnelsKeepNodesApart(t *testing.T) {
	nodes := map[string]*fakeTunnel{}
	targets := map[string]Target{}
	for _, id := range []string{"sbxa", "sbxb"} {
		body := "node of " + id
		port := backend(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, body) }))
		nodes[id] = &fakeTunnel{port: port, dials: map[string]int{}}
		// The same address on both nodes: it is private to each.
		targets[id] = Target{Address: "10.11.0.2", Tunnel: nodes[id]}
	}
	p := newTestProxy(t, Config{}, fakeResolver{targets: targets})
	addr := serveProxy(t, p, false)
	client := &http.Client{}
	for i := range 10 {
		for _, id := range []string{"sbxa", "sbxb"} {
			req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
			req.Header.Set(HeaderSandboxID, id)
			req.Header.Set(HeaderSandboxPort, "8080")
			res, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if want := "node of " + id; string(b) != want {
				t.Fatalf("round %d: %s answered %q, want %q", i, id, b, want)
			}
		}
	}
	for id, n := range nodes {
		n.mu.Lock()
		got := fmt.Sprint(n.dials)
		n.mu.Unlock()
		if n.dials[id] == 0 || len(n.dials) != 1 {
			t.Errorf("node of %s was dialled for %s; want only its own sandbox", id, got)
		}
	}
}
