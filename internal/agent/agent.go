// Package agent serves one node's engine over the agent RPC (connect-go), and dials
// it. The control plane reaches every node, the local one included, only this way.
package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"lelantos.dev/lelantos/internal/engine"
	agentv1 "lelantos.dev/lelantos/internal/gen/agent/v1"
	"lelantos.dev/lelantos/internal/gen/agent/v1/agentv1connect"
	"lelantos.dev/lelantos/internal/network"
	"lelantos.dev/lelantos/internal/runtime"
)

// Server implements the agent service on an engine.
type Server struct {
	engine *engine.Engine
}

var _ agentv1connect.AgentServiceHandler = (*Server)(nil)

// NewServer returns the service for e.
func NewServer(e *engine.Engine) *Server { return &Server{engine: e} }

// Handler returns the HTTP path and handler to mount.
func (s *Server) Handler(opts ...connect.HandlerOption) (string, http.Handler) {
	return agentv1connect.NewAgentServiceHandler(s, opts...)
}

// NewClient dials the agent at baseURL (e.g. http://127.0.0.1:7801).
func NewClient(httpClient connect.HTTPClient, baseURL string) agentv1connect.AgentServiceClient {
	return agentv1connect.NewAgentServiceClient(httpClient, baseURL)
}

// toConnect maps engine errors to the RPC codes the control plane branches on.
func toConnect(err error) error {
	if err == nil {
		return nil
	}
	code := connect.CodeInternal
	switch {
	case errors.Is(err, engine.ErrNotFound):
		code = connect.CodeNotFound
	case errors.Is(err, engine.ErrExists):
		code = connect.CodeAlreadyExists
	case errors.Is(err, engine.ErrInvalid):
		code = connect.CodeInvalidArgument
	case errors.Is(err, engine.ErrState), runtime.IsUnsupported(err):
		code = connect.CodeFailedPrecondition
	case errors.Is(err, engine.ErrNodeFull), errors.Is(err, network.ErrExhausted):
		code = connect.CodeResourceExhausted // the control plane answers 503: retry later
	case errors.Is(err, context.DeadlineExceeded):
		code = connect.CodeDeadlineExceeded
	}
	return connect.NewError(code, err)
}

func specFromProto(p *agentv1.SandboxSpec) engine.Spec {
	if p == nil {
		return engine.Spec{}
	}
	return engine.Spec{
		ID: p.GetSandboxId(), TemplateID: p.GetTemplateId(), RootfsPath: p.GetTemplateRootfs(),
		RuntimeClass: p.GetRuntimeClass(), CPUCount: int(p.GetCpuCount()), MemoryMB: int(p.GetMemoryMb()),
		DiskSizeMB: int(p.GetDiskSizeMb()), EnvVars: p.GetEnvVars(), AccessToken: p.GetEnvdAccessToken(),
		AllowInternet: p.GetAllowInternetAccess(), DefaultUser: p.GetDefaultUser(),
		DefaultWorkdir: p.GetDefaultWorkdir(), StartCmd: p.GetStartCmd(),
		SnapshotImage: p.GetSnapshotImage(),
	}
}

func specToProto(s engine.Spec) *agentv1.SandboxSpec {
	return &agentv1.SandboxSpec{
		SandboxId: s.ID, TemplateId: s.TemplateID, TemplateRootfs: s.RootfsPath,
		RuntimeClass: s.RuntimeClass, CpuCount: int32(s.CPUCount), MemoryMb: int32(s.MemoryMB),
		DiskSizeMb: int32(s.DiskSizeMB), EnvVars: s.EnvVars, EnvdAccessToken: s.AccessToken,
		AllowInternetAccess: s.AllowInternet, DefaultUser: s.DefaultUser,
		DefaultWorkdir: s.DefaultWorkdir, StartCmd: s.StartCmd,
		SnapshotImage: s.SnapshotImage,
	}
}

func statusToProto(st engine.Status) *agentv1.SandboxStatus {
	state := agentv1.SandboxState_SANDBOX_STATE_UNSPECIFIED
	switch st.State {
	case engine.StateRunning:
		state = agentv1.SandboxState_SANDBOX_STATE_RUNNING
	case engine.StatePaused:
		state = agentv1.SandboxState_SANDBOX_STATE_PAUSED
	case engine.StateDead:
		state = agentv1.SandboxState_SANDBOX_STATE_DEAD
	}
	return &agentv1.SandboxStatus{
		SandboxId: st.Spec.ID, State: state, Address: st.Address,
		RuntimeClass: st.Spec.RuntimeClass, Reason: st.Reason, Spec: specToProto(st.Spec),
	}
}

// CreateSandbox implements the agent service.
func (s *Server) CreateSandbox(ctx context.Context, req *connect.Request[agentv1.CreateSandboxRequest]) (*connect.Response[agentv1.CreateSandboxResponse], error) {
	st, err := s.engine.Create(ctx, specFromProto(req.Msg.GetSpec()))
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&agentv1.CreateSandboxResponse{Status: statusToProto(st)}), nil
}

// PauseSandbox implements the agent service.
func (s *Server) PauseSandbox(ctx context.Context, req *connect.Request[agentv1.PauseSandboxRequest]) (*connect.Response[agentv1.PauseSandboxResponse], error) {
	st, err := s.engine.Pause(ctx, req.Msg.GetSandboxId())
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&agentv1.PauseSandboxResponse{Status: statusToProto(st)}), nil
}

// ResumeSandbox implements the agent service.
func (s *Server) ResumeSandbox(ctx context.Context, req *connect.Request[agentv1.ResumeSandboxRequest]) (*connect.Response[agentv1.ResumeSandboxResponse], error) {
	st, err := s.engine.Resume(ctx, req.Msg.GetSandboxId())
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&agentv1.ResumeSandboxResponse{Status: statusToProto(st)}), nil
}

// KillSandbox implements the agent service.
func (s *Server) KillSandbox(ctx context.Context, req *connect.Request[agentv1.KillSandboxRequest]) (*connect.Response[agentv1.KillSandboxResponse], error) {
	if err := s.engine.Kill(ctx, req.Msg.GetSandboxId()); err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&agentv1.KillSandboxResponse{}), nil
}

// ListSandboxes implements the agent service.
func (s *Server) ListSandboxes(ctx context.Context, req *connect.Request[agentv1.ListSandboxesRequest]) (*connect.Response[agentv1.ListSandboxesResponse], error) {
	out := &agentv1.ListSandboxesResponse{}
	for _, st := range s.engine.List() {
		out.Sandboxes = append(out.Sandboxes, statusToProto(st))
	}
	return connect.NewResponse(out), nil
}

// SandboxMetrics implements the agent service.
func (s *Server) SandboxMetrics(ctx context.Context, req *connect.Request[agentv1.SandboxMetricsRequest]) (*connect.Response[agentv1.SandboxMetricsResponse], error) {
	m, err := s.engine.Metrics(ctx, req.Msg.GetSandboxId())
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&agentv1.SandboxMetricsResponse{Metric: &agentv1.Metric{
		Timestamp: timestamppb.Now(), CpuCount: int32(m.CPUCount), CpuUsedPct: m.CPUUsedPct,
		MemUsed: m.MemUsed, MemTotal: m.MemTotal, MemCache: m.MemCache,
		DiskUsed: m.DiskUsed, DiskTotal: m.DiskTotal,
	}}), nil
}

// SandboxLogs implements the agent service.
func (s *Server) SandboxLogs(ctx context.Context, req *connect.Request[agentv1.SandboxLogsRequest]) (*connect.Response[agentv1.SandboxLogsResponse], error) {
	var start time.Time
	if req.Msg.GetStart() != nil {
		start = req.Msg.GetStart().AsTime()
	}
	lines, err := s.engine.Logs(req.Msg.GetSandboxId(), start, int(req.Msg.GetLimit()))
	if err != nil {
		return nil, toConnect(fmt.Errorf("logs: %w", err))
	}
	out := &agentv1.SandboxLogsResponse{}
	for _, l := range lines {
		out.Logs = append(out.Logs, &agentv1.LogLine{Timestamp: timestamppb.New(l.Time), Line: l.Line})
	}
	return connect.NewResponse(out), nil
}
