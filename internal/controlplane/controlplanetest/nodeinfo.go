package controlplanetest

import (
	"context"
	"strings"

	"connectrpc.com/connect"

	agentv1 "lelantos.dev/lelantos/internal/gen/agent/v1"
)

// NodeInfo reports a machine of 2 CPUs and 4 GiB, and the fake's sandboxes
// by state, as the engine names states.
func (n *Node) NodeInfo(ctx context.Context, _ *connect.Request[agentv1.NodeInfoRequest]) (*connect.Response[agentv1.NodeInfoResponse], error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls[OpInfo]++
	if fail := n.failures[OpInfo]; fail != nil {
		return nil, fail
	}
	out := &agentv1.NodeInfoResponse{
		Version: "fake", CpuCount: 2, CpuPercent: 25, MemoryTotalBytes: 4 << 30, MemoryUsedBytes: 1 << 30,
		LimitCpus: 32, LimitMemoryBytes: 3 << 30, DataDir: "/fake", DiskMountPoint: "/", DiskDevice: "fake",
		DiskFilesystemType: "fake", DiskTotalBytes: 100 << 30, DiskUsedBytes: 10 << 30,
		Sandboxes: map[string]int32{"starting": 0, "running": 0, "pausing": 0, "paused": 0, "resuming": 0, "dead": 0},
	}
	for _, sb := range n.sandboxes {
		state := strings.ToLower(strings.TrimPrefix(sb.GetState().String(), "SANDBOX_STATE_"))
		out.Sandboxes[state]++
		if sb.GetState() != agentv1.SandboxState_SANDBOX_STATE_PAUSED && sb.GetState() != agentv1.SandboxState_SANDBOX_STATE_DEAD {
			out.CommittedCpus += sb.GetSpec().GetCpuCount()
			out.CommittedMemoryBytes += int64(sb.GetSpec().GetMemoryMb()) << 20
		}
	}
	return connect.NewResponse(out), nil
}
