package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"connectrpc.com/connect"

	"lelantos.dev/lelantos/internal/clustertls"
	"lelantos.dev/lelantos/internal/controlplane"
	agentv1 "lelantos.dev/lelantos/internal/gen/agent/v1"
	clusterv1 "lelantos.dev/lelantos/internal/gen/cluster/v1"
	"lelantos.dev/lelantos/internal/gen/cluster/v1/clusterv1connect"
)

// Source is what a node reports: its agent's NodeInfo.
type Source interface {
	NodeInfo(context.Context, *connect.Request[agentv1.NodeInfoRequest]) (*connect.Response[agentv1.NodeInfoResponse], error)
}

// Reporter registers a node with a control plane and heartbeats its report.
type Reporter struct {
	// AgentAddress is host:port at which the control plane reaches the
	// node's agent.
	AgentAddress string
	client       clusterv1connect.ClusterServiceClient
	src          Source
	log          *slog.Logger
}

// NewReporter returns a Reporter of src to the control plane's cluster
// endpoint at url (https://HOST:PORT), calling it through hc (a
// ControlPlaneClient).
func NewReporter(url string, hc *http.Client, agentAddress string, src Source, log *slog.Logger) *Reporter {
	reporting := *hc
	reporting.Timeout = 10 * time.Second
	return &Reporter{AgentAddress: agentAddress, client: clusterv1connect.NewClusterServiceClient(&reporting, url), src: src, log: log}
}

// ControlPlaneClient is an HTTP client of a node for its control plane's
// cluster endpoint: certificate name of the cluster TLS directory dir, and
// only a control plane of its CA trusted, whose certificate must hold
// serverName (when empty, the host of each URL called).
func ControlPlaneClient(dir, name, serverName string) (*http.Client, error) {
	cfg, err := clustertls.ClientConfigFromDir(dir, name, clustertls.RoleControlPlane, "")
	if err != nil {
		return nil, err
	}
	cfg.ServerName = serverName
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true,
		TLSHandshakeTimeout: dialTimeout}}, nil
}

// Report sends one heartbeat and returns the interval the control plane asks
// for.
func (r *Reporter) Report(ctx context.Context) (time.Duration, error) {
	info, err := r.src.NodeInfo(ctx, connect.NewRequest(&agentv1.NodeInfoRequest{}))
	if err != nil {
		return 0, fmt.Errorf("report the node: read its info: %w", err)
	}
	resp, err := r.client.Heartbeat(ctx, connect.NewRequest(&clusterv1.HeartbeatRequest{AgentAddress: r.AgentAddress, Report: info.Msg}))
	if err != nil {
		return 0, fmt.Errorf("report the node: %w", err)
	}
	return time.Duration(resp.Msg.GetIntervalSeconds()) * time.Second, nil
}

// Run reports at once and then every interval the control plane asks for
// until ctx ends; failures are logged and retried at the next tick.
func (r *Reporter) Run(ctx context.Context) {
	// Until the control plane says, its default.
	interval, failing := controlplane.DefaultHeartbeatInterval, false
	for {
		next, err := r.Report(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			if !failing {
				r.log.Warn("node heartbeat failed; retrying", "err", err)
			}
			failing = true
		case err == nil:
			if failing {
				r.log.Info("node heartbeat delivered again")
			}
			failing = false
			if next > 0 {
				interval = next
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}
