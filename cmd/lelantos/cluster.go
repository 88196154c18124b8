package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"time"

	"lelantos.dev/lelantos/internal/agent"
	"lelantos.dev/lelantos/internal/artifact"
	"lelantos.dev/lelantos/internal/cluster"
	"lelantos.dev/lelantos/internal/clustertls"
	"lelantos.dev/lelantos/internal/controlplane"
	"lelantos.dev/lelantos/internal/proxy"
)

// remoteNodes reaches the nodes that report to this server (nil without
// --cluster-listen), telling the sandbox proxy of their pauses and kills as
// proxyAwareNode does for the server's own node.
type remoteNodes struct {
	remote *cluster.Remote
	// trees names this machine's template trees and serves them and the
	// kept images (blobs) to nodes.
	trees       *artifact.Index
	blobs       *artifact.Blobs
	dropIdle    func()
	dropSandbox func(id string)
}

// newRemoteNodes returns the server's remote nodes; nil, nil when it takes
// none.
func newRemoteNodes(f serveFlags, log *slog.Logger, dropIdle func(), dropSandbox func(string)) (*remoteNodes, error) {
	if f.clusterListen == "" {
		return nil, nil
	}
	r, err := cluster.NewRemote(f.clusterTLSDir, clustertls.ControlPlaneName)
	if err != nil {
		return nil, fmt.Errorf("--cluster-tls-dir: %w", err)
	}
	dir := f.imagesDir
	if dir == "" {
		dir = filepath.Join(f.dataDir, "images")
	}
	blobs, err := artifact.NewBlobs(dir)
	if err != nil {
		return nil, err
	}
	return &remoteNodes{remote: r, trees: artifact.NewIndex(log, blobs), blobs: blobs, dropIdle: dropIdle, dropSandbox: dropSandbox}, nil
}

// nodes is what the control plane is configured with: nil when none.
func (n *remoteNodes) nodes() controlplane.RemoteNodes {
	if n == nil {
		return nil
	}
	return n
}

// images is what keeps paused sandboxes' images for the control plane: nil
// when no remote nodes.
func (n *remoteNodes) images() controlplane.ImageKeeper {
	if n == nil {
		return nil
	}
	return n
}

// localImages is where the server's own node finds kept images: nil when no
// remote nodes.
func (n *remoteNodes) localImages() agent.Images {
	if n == nil {
		return nil
	}
	return n.blobs
}

// KeepImage copies the image of sandboxID, paused on node id, into the blobs.
func (n *remoteNodes) KeepImage(ctx context.Context, id, address, sandboxID string) (string, error) {
	rc, err := n.remote.FetchImage(ctx, id, address, sandboxID)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	return n.blobs.Put(ctx, rc)
}

// KeepSnapshot copies snapshot snapshotID of node id into the blobs.
func (n *remoteNodes) KeepSnapshot(ctx context.Context, id, address, snapshotID string) (string, error) {
	rc, err := n.remote.FetchSnapshot(ctx, id, address, snapshotID)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	return n.blobs.Put(ctx, rc)
}

// DropImage removes a kept image.
func (n *remoteNodes) DropImage(_ context.Context, name string) error { return n.blobs.Drop(name) }

// artifacts is what names trees for the control plane: nil when no remote
// nodes.
func (n *remoteNodes) artifacts() controlplane.Artifacts {
	if n == nil {
		return nil
	}
	return n.trees
}

// Agent returns node id's agent client.
func (n *remoteNodes) Agent(id, address string) (controlplane.Node, error) {
	c, err := n.remote.Agent(id, address)
	if err != nil {
		return nil, err
	}
	return proxyAwareNode{AgentServiceClient: c, dropIdle: n.dropIdle, dropSandbox: n.dropSandbox}, nil
}

// Tunnel returns the tunnel to node id's sandboxes.
func (n *remoteNodes) Tunnel(id, address string) (proxy.Tunnel, error) {
	t, err := n.remote.Tunnel(id, address)
	if err != nil {
		return nil, err
	}
	return t, nil
}

// serveCluster serves the cluster endpoint nodes report to on
// --cluster-listen, with TLS that requires a node certificate of the cluster
// CA; nil, nil without the flag.
func serveCluster(f serveFlags, svc *controlplane.Service, remote *remoteNodes, log *slog.Logger) (*http.Server, error) {
	if f.clusterListen == "" {
		return nil, nil
	}
	tc, err := clustertls.ServerConfigFromDir(f.clusterTLSDir, clustertls.ControlPlaneName, clustertls.RoleNode)
	if err != nil {
		return nil, fmt.Errorf("--cluster-tls-dir: %w", err)
	}
	tc.NextProtos = []string{"h2", "http/1.1"}
	ln, err := f.listenTCP(context.Background(), f.clusterListen)
	if err != nil {
		return nil, fmt.Errorf("--cluster-listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle(cluster.NewHandler(svc, controlplane.DefaultHeartbeatInterval))
	mux.Handle(artifact.PathPrefix, remote.trees.Handler())
	srv := &http.Server{Handler: cluster.WithPeer(mux), ReadHeaderTimeout: 10 * time.Second, TLSConfig: tc}
	go func() {
		if err := srv.Serve(tls.NewListener(ln, tc)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("cluster endpoint", "err", err)
		}
	}()
	log.Info("cluster endpoint served with mutual TLS", "address", ln.Addr().String(), "certificates", f.clusterTLSDir)
	return srv, nil
}
