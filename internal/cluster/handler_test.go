package cluster_test

import (
	"context"
	"crypto/tls"
	"net/http"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"lelantos.dev/lelantos/internal/cluster"
	"lelantos.dev/lelantos/internal/clustertls"
	agentv1 "lelantos.dev/lelantos/internal/gen/agent/v1"
	clusterv1 "lelantos.dev/lelantos/internal/gen/cluster/v1"
	"lelantos.dev/lelantos/internal/gen/cluster/v1/clusterv1connect"
)

// registry records the heartbeats it is told of.
type registry struct {
	mu    sync.Mutex
	beats map[string]string // node ID: address
}

func (r *registry) NodeReported(_ context.Context, id, address string, _ *agentv1.NodeInfoResponse) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.beats[id] = address
	return nil
}

func (r *registry) get() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]string{}
	for k, v := range r.beats {
		out[k] = v
	}
	return out
}

// serveCluster runs the cluster endpoint with the control plane's
// certificate of dir on loopback and returns its URL.
func serveCluster(t *testing.T, dir string, reg cluster.Registry) string {
	t.Helper()
	tc, err := clustertls.ServerConfigFromDir(dir, clustertls.ControlPlaneName, clustertls.RoleNode)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", tc)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(cluster.NewHandler(reg, 5*time.Second))
	srv := &http.Server{Handler: cluster.WithPeer(mux), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "https://" + ln.Addr().String()
}

// heartbeat reports as the holder of cfg's client certificate.
func heartbeat(url string, cfg *tls.Config, address string) error {
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	defer hc.CloseIdleConnections()
	_, err := clusterv1connect.NewClusterServiceClient(hc, url).Heartbeat(context.Background(),
		connect.NewRequest(&clusterv1.HeartbeatRequest{AgentAddress: address, Report: &agentv1.NodeInfoResponse{}}))
	return err
}

// TestHeartbeatIdentity attacks the cluster endpoint: only a node
// certificate of the cluster's CA is heard, and a node is recorded under the
// name of its certificate, whatever it claims, so it cannot report as another
// node.
func TestHeartbeatIdentity(t *testing.T) {
	dir, stranger := t.TempDir(), t.TempDir()
	for _, d := range []string{dir, stranger} {
		if err := clustertls.InitDir(d, []string{"127.0.0.1"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := clustertls.IssueInto(dir, "node-b", clustertls.RoleNode, []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	reg := &registry{beats: map[string]string{}}
	url := serveCluster(t, dir, reg)
	client := func(d, name string) *tls.Config {
		cfg, err := clustertls.ClientConfigFromDir(d, name, clustertls.RoleControlPlane, "")
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	anonymous := client(dir, clustertls.NodeName)
	anonymous.Certificates = nil
	for _, tt := range []struct {
		name string
		cfg  *tls.Config
	}{
		{"no client certificate", anonymous},
		{"a node certificate of another CA", client(stranger, clustertls.NodeName)},
		{"a control plane's certificate of the CA", client(dir, clustertls.ControlPlaneName)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := heartbeat(url, tt.cfg, "127.0.0.1:1"); err == nil {
				t.Fatal("the heartbeat was taken")
			}
		})
	}
	if got := reg.get(); len(got) != 0 {
		t.Fatalf("refused callers were recorded: %v", got)
	}
	if err := heartbeat(url, client(dir, clustertls.NodeName), "127.0.0.1:3902"); err != nil {
		t.Fatalf("the node's own heartbeat: %v", err)
	}
	// node-b reports node's address: it is recorded as node-b, and node
	// keeps its own entry; the control plane dials node-b as node-b, so
	// that address, serving node's certificate, is refused to it
	// (clustertls' TestServerNameBinding).
	if err := heartbeat(url, client(dir, "node-b"), "127.0.0.1:3902"); err != nil {
		t.Fatalf("node-b's heartbeat: %v", err)
	}
	if got := reg.get(); len(got) != 2 || got[clustertls.NodeName] != "127.0.0.1:3902" || got["node-b"] != "127.0.0.1:3902" {
		t.Fatalf("recorded %v, want each node under its certificate's name", got)
	}
}
