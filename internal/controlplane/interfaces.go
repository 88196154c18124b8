package controlplane

import (
	"context"
	"time"

	"connectrpc.com/connect"

	agentv1 "lelantos.dev/lelantos/internal/gen/agent/v1"
	"lelantos.dev/lelantos/internal/store"
)

// Store is the persistence the Service needs; *store.DB implements it.
// Admissions (InsertSandboxWithin, UpdateSandboxWithin, InsertTemplateBuild)
// check a team's quotas in the transaction that stores the change, and
// updates are compare-and-swaps on the sandbox's Version: the Service keeps
// no count of its own. Its leases serialize operations on one sandbox, and
// elect the replica that runs the background duties, across every replica
// on the store.
type Store interface {
	InsertSandboxWithin(ctx context.Context, sb *store.Sandbox, defaults store.Quotas) error
	GetSandbox(ctx context.Context, id string) (*store.Sandbox, error)
	UpdateSandbox(ctx context.Context, sb *store.Sandbox) error
	UpdateSandboxWithin(ctx context.Context, sb *store.Sandbox, defaults store.Quotas) error
	DeleteSandbox(ctx context.Context, id string) error
	ListSandboxes(ctx context.Context, f store.SandboxFilter) ([]*store.Sandbox, string, error)
	ListDue(ctx context.Context, f store.DueFilter) ([]*store.Sandbox, error)
	GetTemplate(ctx context.Context, id string) (*store.Template, error)
	FindTemplate(ctx context.Context, teamID, ref string) (*store.Template, error)
	ListTeamTemplates(ctx context.Context, teamID string) ([]*store.Template, error)
	InsertTemplateBuild(ctx context.Context, b *store.TemplateBuild, defaults store.Quotas) error
	GetTemplateBuild(ctx context.Context, id string) (*store.TemplateBuild, error)
	ListRunningBuilds(ctx context.Context, teamID string) ([]*store.TemplateBuild, error)
	FinishTemplateBuild(ctx context.Context, id, status string, at time.Time) error
	DeleteTemplateBuild(ctx context.Context, id string) error
	InsertMetric(ctx context.Context, sandboxID string, m store.Metric) error
	ListMetrics(ctx context.Context, sandboxID string, start, end time.Time) ([]store.Metric, error)
	DeleteMetricsBefore(ctx context.Context, before time.Time) (int64, error)
	AppendEvent(ctx context.Context, sandboxID string, e store.Event) error
	ListEvents(ctx context.Context, sandboxID string, start time.Time, limit int) ([]store.Event, error)
	SnapshotStore
	VolumeStore
	LeaseStore
	NodeStore
}

// Node is the part of the agent RPC client the Service uses; the generated
// agentv1connect.AgentServiceClient implements it.
type Node interface {
	CreateSandbox(context.Context, *connect.Request[agentv1.CreateSandboxRequest]) (*connect.Response[agentv1.CreateSandboxResponse], error)
	PauseSandbox(context.Context, *connect.Request[agentv1.PauseSandboxRequest]) (*connect.Response[agentv1.PauseSandboxResponse], error)
	ResumeSandbox(context.Context, *connect.Request[agentv1.ResumeSandboxRequest]) (*connect.Response[agentv1.ResumeSandboxResponse], error)
	KillSandbox(context.Context, *connect.Request[agentv1.KillSandboxRequest]) (*connect.Response[agentv1.KillSandboxResponse], error)
	UpdateSandboxNetwork(context.Context, *connect.Request[agentv1.UpdateSandboxNetworkRequest]) (*connect.Response[agentv1.UpdateSandboxNetworkResponse], error)
	ListSandboxes(context.Context, *connect.Request[agentv1.ListSandboxesRequest]) (*connect.Response[agentv1.ListSandboxesResponse], error)
	SandboxMetrics(context.Context, *connect.Request[agentv1.SandboxMetricsRequest]) (*connect.Response[agentv1.SandboxMetricsResponse], error)
	SandboxLogs(context.Context, *connect.Request[agentv1.SandboxLogsRequest]) (*connect.Response[agentv1.SandboxLogsResponse], error)
	ForkSandbox(context.Context, *connect.Request[agentv1.ForkSandboxRequest]) (*connect.Response[agentv1.ForkSandboxResponse], error)
	SnapshotSandbox(context.Context, *connect.Request[agentv1.SnapshotSandboxRequest]) (*connect.Response[agentv1.SnapshotSandboxResponse], error)
	DeleteSnapshot(context.Context, *connect.Request[agentv1.DeleteSnapshotRequest]) (*connect.Response[agentv1.DeleteSnapshotResponse], error)
	NodeInfo(context.Context, *connect.Request[agentv1.NodeInfoRequest]) (*connect.Response[agentv1.NodeInfoResponse], error)
}
