package cluster

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"lelantos.dev/lelantos/internal/agent"
	"lelantos.dev/lelantos/internal/clustertls"
	"lelantos.dev/lelantos/internal/gen/agent/v1/agentv1connect"
)

// agentIdleTimeout closes an agent connection nobody used for this long;
// dialTimeout bounds a connection to a node, its TLS handshake included.
const (
	agentIdleTimeout = 90 * time.Second
	dialTimeout      = 10 * time.Second
)

// Remote reaches remote nodes with the control plane's certificate of a
// cluster TLS directory. It keeps one client per node and address, so a node
// that moves gets a new one. It is safe for concurrent use.
type Remote struct {
	dir, name string
	mu        sync.Mutex
	nodes     map[string]*remoteNode // by node ID
}

// remoteNode is what Remote keeps of one node.
type remoteNode struct {
	address string
	agent   agentv1connect.AgentServiceClient
	tunnel  *Tunnel
	http    *http.Client
}

// NewRemote returns a Remote using certificate name of the cluster TLS
// directory dir; it reads the files now, so that a bad directory is told at
// start.
func NewRemote(dir, name string) (*Remote, error) {
	if _, err := clustertls.ClientConfigFromDir(dir, name, clustertls.RoleNode, "probe"); err != nil {
		return nil, fmt.Errorf("remote nodes: %w", err)
	}
	return &Remote{dir: dir, name: name, nodes: map[string]*remoteNode{}}, nil
}

// tlsConfig is the configuration that dials node id and only it.
func (r *Remote) tlsConfig(id string) (*tls.Config, error) {
	cfg, err := clustertls.ClientConfigFromDir(r.dir, r.name, clustertls.RoleNode, id)
	if err != nil {
		return nil, fmt.Errorf("remote node %s: %w", id, err)
	}
	return cfg, nil
}

// node returns the kept clients of node id at address, made on first use.
func (r *Remote) node(id, address string) (*remoteNode, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n, ok := r.nodes[id]; ok && n.address == address {
		return n, nil
	} else if ok {
		n.http.CloseIdleConnections()
	}
	cfg, err := r.tlsConfig(id)
	if err != nil {
		return nil, err
	}
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("remote node %s: address %q: %w", id, address, err)
	}
	cfg.ServerName = host
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg.Clone(), ForceAttemptHTTP2: true,
		IdleConnTimeout: agentIdleTimeout, TLSHandshakeTimeout: dialTimeout}}
	n := &remoteNode{address: address, http: hc,
		agent:  agentv1connect.NewAgentServiceClient(hc, "https://"+address),
		tunnel: &Tunnel{Address: address, TLS: cfg}}
	r.nodes[id] = n
	return n, nil
}

// Agent returns the agent RPC client of node id at address.
func (r *Remote) Agent(id, address string) (agentv1connect.AgentServiceClient, error) {
	n, err := r.node(id, address)
	if err != nil {
		return nil, err
	}
	return n.agent, nil
}

// Tunnel returns the tunnel to the sandboxes of node id at address.
func (r *Remote) Tunnel(id, address string) (*Tunnel, error) {
	n, err := r.node(id, address)
	if err != nil {
		return nil, err
	}
	return n.tunnel, nil
}

// CloseIdleConnections closes every node connection carrying no call.
func (r *Remote) CloseIdleConnections() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.nodes {
		n.http.CloseIdleConnections()
	}
}

// FetchImage returns the image of sandbox sandboxID, paused on node id at
// address (agent.ImagesPath), for the caller to read and close.
func (r *Remote) FetchImage(ctx context.Context, id, address, sandboxID string) (io.ReadCloser, error) {
	return r.fetch(ctx, id, address, agent.ImagesPath+sandboxID, "the image of "+sandboxID)
}

// FetchSnapshot returns snapshot snapshotID of node id at address
// (agent.SnapshotsPath), for the caller to read and close.
func (r *Remote) FetchSnapshot(ctx context.Context, id, address, snapshotID string) (io.ReadCloser, error) {
	return r.fetch(ctx, id, address, agent.SnapshotsPath+snapshotID, "snapshot "+snapshotID)
}

// fetch GETs path of node id's agent at address; what names it in errors.
func (r *Remote) fetch(ctx context.Context, id, address, path, what string) (io.ReadCloser, error) {
	n, err := r.node(id, address)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+address+path, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch %s from node %s: %w", what, id, err)
	}
	res, err := n.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch %s from node %s: %w", what, id, err)
	}
	if res.StatusCode != http.StatusOK {
		defer res.Body.Close()
		msg, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		return nil, fmt.Errorf("fetch %s from node %s: %s: %s", what, id, res.Status, strings.TrimSpace(string(msg)))
	}
	return res.Body, nil
}
