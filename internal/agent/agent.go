// Package agent serves one node's engine over the agent RPC (connect-go), and dials
// it. The control plane reaches every node, the local one included, only this way.
package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"

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
	build  Build
	// instance names this run of the agent (NodeInfo).
	instance string
	// trees finds templates' trees by name (nil: the node takes paths only).
	trees Trees
	// images fetches kept images of paused sandboxes (nil: none taken).
	images Images
	// created and failed count the CreateSandbox calls that succeeded and
	// failed, for NodeInfo.
	created, failed atomic.Int64
}

// Trees finds the trees named by specs' template_artifact on this node,
// fetching those it does not hold; *artifact.Cache implements it.
type Trees interface {
	Tree(ctx context.Context, name string) (string, error)
}

// WithTrees makes the server take specs that name their template's tree
// (template_artifact) and find it in t.
func (s *Server) WithTrees(t Trees) *Server {
	s.trees = t
	return s
}

// Build names the build of the agent, as NodeInfo reports it.
type Build struct {
	// Version is the release or `git describe` of the build; Commit the
	// revision it was built from ("" when unknown).
	Version, Commit string
}

var _ agentv1connect.AgentServiceHandler = (*Server)(nil)

// NewServer returns the service for e, reporting build b.
func NewServer(e *engine.Engine, b Build) *Server {
	var r [8]byte
	_, _ = rand.Read(r[:]) // crypto/rand does not fail on Linux
	return &Server{engine: e, build: b, instance: hex.EncodeToString(r[:])}
}

// Handler returns the HTTP path and handler to mount.
func (s *Server) Handler(opts ...connect.HandlerOption) (string, http.Handler) {
	return agentv1connect.NewAgentServiceHandler(s, opts...)
}

// NewClient dials the agent at baseURL (e.g. http://127.0.0.1:7801), with
// opts (e.g. tracing interceptors).
func NewClient(httpClient connect.HTTPClient, baseURL string, opts ...connect.ClientOption) agentv1connect.AgentServiceClient {
	return agentv1connect.NewAgentServiceClient(httpClient, baseURL, opts...)
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
	case errors.Is(err, engine.ErrInvalid), errors.Is(err, network.ErrInvalidEgress):
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
		SnapshotImage: p.GetSnapshotImage(), Snapshot: p.GetSnapshotId(),
		Egress: egressFromProto(p.GetEgress()), VolumeMounts: volumeMountsFromProto(p.GetVolumeMounts()),
	}
}

func specToProto(s engine.Spec) *agentv1.SandboxSpec {
	return &agentv1.SandboxSpec{
		SandboxId: s.ID, TemplateId: s.TemplateID, TemplateRootfs: s.RootfsPath,
		RuntimeClass: s.RuntimeClass, CpuCount: int32(s.CPUCount), MemoryMb: int32(s.MemoryMB),
		DiskSizeMb: int32(s.DiskSizeMB), EnvVars: s.EnvVars, EnvdAccessToken: s.AccessToken,
		AllowInternetAccess: s.AllowInternet, DefaultUser: s.DefaultUser,
		DefaultWorkdir: s.DefaultWorkdir, StartCmd: s.StartCmd,
		SnapshotImage: s.SnapshotImage, SnapshotId: s.Snapshot,
		Egress: egressToProto(s.Egress), VolumeMounts: volumeMountsToProto(s.VolumeMounts),
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
	spec := specFromProto(req.Msg.GetSpec())
	if name := req.Msg.GetSpec().GetTemplateArtifact(); name != "" {
		if s.trees == nil {
			s.failed.Add(1)
			return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("create sandbox: this node takes templates by path, not by template_artifact"))
		}
		tree, err := s.trees.Tree(ctx, name)
		if err != nil {
			s.failed.Add(1)
			return nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf("create sandbox: template tree: %w", err))
		}
		spec.RootfsPath = tree
	}
	if name := req.Msg.GetSpec().GetSnapshotArtifact(); name != "" {
		id, err := s.importImage(ctx, name, spec.RootfsPath)
		if err != nil {
			s.failed.Add(1)
			return nil, toConnect(err)
		}
		spec.Snapshot, spec.RootfsPath = id, ""
	}
	st, err := s.engine.Create(ctx, spec)
	if err != nil {
		s.failed.Add(1)
		return nil, toConnect(err)
	}
	s.created.Add(1)
	return connect.NewResponse(&agentv1.CreateSandboxResponse{Status: statusToProto(st)}), nil
}

// PauseSandbox implements the agent service.
func (s *Server) PauseSandbox(ctx context.Context, req *connect.Request[agentv1.PauseSandboxRequest]) (*connect.Response[agentv1.PauseSandboxResponse], error) {
	pause := s.engine.Pause
	if req.Msg.GetFilesystemOnly() {
		pause = s.engine.PauseFiles
	}
	st, err := pause(ctx, req.Msg.GetSandboxId())
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&agentv1.PauseSandboxResponse{Status: statusToProto(st)}), nil
}

// ResumeSandbox implements the agent service.
func (s *Server) ResumeSandbox(ctx context.Context, req *connect.Request[agentv1.ResumeSandboxRequest]) (*connect.Response[agentv1.ResumeSandboxResponse], error) {
	resume := s.engine.Resume
	if req.Msg.GetColdBoot() {
		resume = s.engine.Reboot
	}
	st, err := resume(ctx, req.Msg.GetSandboxId())
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&agentv1.ResumeSandboxResponse{Status: statusToProto(st)}), nil
}

// KillSandbox implements the agent service.
func (s *Server) KillSandbox(ctx context.Context, req *connect.Request[agentv1.KillSandboxRequest]) (*connect.Response[agentv1.KillSandboxResponse], error) {
	st, _ := s.engine.Get(req.Msg.GetSandboxId())
	if err := s.engine.Kill(ctx, req.Msg.GetSandboxId()); err != nil {
		return nil, toConnect(err)
	}
	s.dropImported(st.Spec.Snapshot)
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
	m := req.Msg
	q := engine.LogQuery{Limit: int(m.GetLimit()), Backward: m.GetBackward(), Level: m.GetMinLevel(), Search: m.GetSearch()}
	if m.GetStart() != nil {
		q.Start = m.GetStart().AsTime()
	}
	if m.GetEnd() != nil {
		q.End = m.GetEnd().AsTime()
	}
	entries, err := s.engine.QueryLogs(m.GetSandboxId(), q)
	if err != nil {
		return nil, toConnect(fmt.Errorf("logs: %w", err))
	}
	out := &agentv1.SandboxLogsResponse{}
	for _, e := range entries {
		l := &agentv1.LogLine{Timestamp: timestamppb.New(e.Time), Line: e.Raw, Source: agentv1.LogSource_LOG_SOURCE_CONSOLE,
			Level: e.Level, Message: e.Message, Fields: e.Fields}
		if e.Event {
			l.Source = agentv1.LogSource_LOG_SOURCE_EVENT
		}
		out.Logs = append(out.Logs, l)
	}
	return connect.NewResponse(out), nil
}

// ForkSandbox implements the agent service.
func (s *Server) ForkSandbox(ctx context.Context, req *connect.Request[agentv1.ForkSandboxRequest]) (*connect.Response[agentv1.ForkSandboxResponse], error) {
	specs := make([]engine.Spec, 0, len(req.Msg.GetForks()))
	for _, f := range req.Msg.GetForks() {
		specs = append(specs, specFromProto(f))
	}
	results, err := s.engine.ForkEach(ctx, req.Msg.GetSandboxId(), specs)
	if err != nil {
		return nil, toConnect(err)
	}
	out := &agentv1.ForkSandboxResponse{}
	for _, r := range results {
		if r.Err != nil {
			code := connect.CodeOf(toConnect(r.Err))
			out.Results = append(out.Results, &agentv1.ForkResult{Error: r.Err.Error(), ErrorCode: int32(code)})
			continue
		}
		out.Results = append(out.Results, &agentv1.ForkResult{Status: statusToProto(r.Status)})
	}
	return connect.NewResponse(out), nil
}

// SnapshotSandbox implements the agent service.
func (s *Server) SnapshotSandbox(ctx context.Context, req *connect.Request[agentv1.SnapshotSandboxRequest]) (*connect.Response[agentv1.SnapshotSandboxResponse], error) {
	info, err := s.engine.TakeSnapshot(ctx, req.Msg.GetSandboxId(), req.Msg.GetSnapshotId())
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&agentv1.SnapshotSandboxResponse{SnapshotId: info.ID, SizeBytes: info.SizeBytes,
		Source: &agentv1.SandboxSpec{SandboxId: info.SourceID, TemplateRootfs: info.RootfsPath, RuntimeClass: info.RuntimeClass,
			CpuCount: int32(info.CPUCount), MemoryMb: int32(info.MemoryMB), DiskSizeMb: int32(info.DiskSizeMB)}}), nil
}

// DeleteSnapshot implements the agent service.
func (s *Server) DeleteSnapshot(ctx context.Context, req *connect.Request[agentv1.DeleteSnapshotRequest]) (*connect.Response[agentv1.DeleteSnapshotResponse], error) {
	if err := s.engine.DeleteSnapshot(ctx, req.Msg.GetSnapshotId()); err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&agentv1.DeleteSnapshotResponse{}), nil
}
