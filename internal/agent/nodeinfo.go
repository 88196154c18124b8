package agent

import (
	"context"

	"connectrpc.com/connect"

	agentv1 "lelantos.dev/lelantos/internal/gen/agent/v1"
)

// NodeInfo implements the agent service.
func (s *Server) NodeInfo(ctx context.Context, _ *connect.Request[agentv1.NodeInfoRequest]) (*connect.Response[agentv1.NodeInfoResponse], error) {
	r, err := s.engine.Report()
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, err)
	}
	out := &agentv1.NodeInfoResponse{
		Version: s.build.Version, Commit: s.build.Commit, Instance: s.instance,
		CpuCount: int32(r.CPUs), CpuPercent: r.CPUPercent,
		MemoryTotalBytes: r.MemoryTotal, MemoryUsedBytes: r.MemoryUsed,
		LimitCpus: int32(r.Capacity.Limit.CPUs), LimitMemoryBytes: int64(r.Capacity.Limit.MemoryMB) << 20,
		CommittedCpus: int32(r.Capacity.Committed.CPUs), CommittedMemoryBytes: int64(r.Capacity.Committed.MemoryMB) << 20,
		DataDir: r.DataDir, DiskTotalBytes: r.DiskTotal, DiskUsedBytes: r.DiskUsed,
		DiskMountPoint: r.Mount.Point, DiskDevice: r.Mount.Device, DiskFilesystemType: r.Mount.Type,
		CreateSuccesses: s.created.Load(), CreateFails: s.failed.Load(),
		Sandboxes: make(map[string]int32, len(r.Sandboxes)), WarmSandboxes: int32(r.Warm),
	}
	for state, n := range r.Sandboxes {
		out.Sandboxes[string(state)] = int32(n)
	}
	return connect.NewResponse(out), nil
}
