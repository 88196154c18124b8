package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	"connectrpc.com/connect"

	agentv1 "lelantos.dev/lelantos/internal/gen/agent/v1"
	"lelantos.dev/lelantos/internal/store"
)

// NodeStore keeps the nodes' heartbeats; *store.DB implements it.
type NodeStore interface {
	PutNodeHeartbeat(ctx context.Context, id, address string, report []byte) error
	NodeLoads(ctx context.Context) (map[string]store.NodeLoad, error)
	ListNodes(ctx context.Context) ([]*store.Node, error)
	GetNode(ctx context.Context, id string) (*store.Node, error)
	SetNodeStatus(ctx context.Context, id, status string) error
}

// Node states, as E2B names them.
const (
	// NodeReady: the node's last heartbeat is recent and it takes new
	// sandboxes.
	NodeReady = store.NodeReady
	// NodeDraining: the operator drains the node: it takes no new sandboxes
	// (creates and forks answer 503), those it holds go on.
	NodeDraining = store.NodeDraining
	// NodeUnhealthy: the node has been silent for longer than NodeLostAfter;
	// its sandboxes are out of reach until it is heard again.
	NodeUnhealthy = "unhealthy"
)

// NodeReport is what a node tells at a heartbeat, as the store keeps it.
type NodeReport struct {
	// Version and Commit name the build of its agent.
	Version string `json:"version"`
	Commit  string `json:"commit"`
	// Instance names the run of the node's agent: a new one means it
	// restarted.
	Instance string `json:"instance,omitempty"`
	// The machine: CPUs, their use in percent, memory and what is in use.
	CPUCount         int     `json:"cpuCount"`
	CPUPercent       float64 `json:"cpuPercent"`
	MemoryTotalBytes int64   `json:"memoryTotalBytes"`
	MemoryUsedBytes  int64   `json:"memoryUsedBytes"`
	// What sandboxes may commit in all, and what they commit.
	LimitCPUs            int   `json:"limitCPUs"`
	LimitMemoryBytes     int64 `json:"limitMemoryBytes"`
	CommittedCPUs        int   `json:"committedCPUs"`
	CommittedMemoryBytes int64 `json:"committedMemoryBytes"`
	// The file system of the node's data directory.
	DataDir            string `json:"dataDir"`
	DiskMountPoint     string `json:"diskMountPoint"`
	DiskDevice         string `json:"diskDevice"`
	DiskFilesystemType string `json:"diskFilesystemType"`
	DiskTotalBytes     int64  `json:"diskTotalBytes"`
	DiskUsedBytes      int64  `json:"diskUsedBytes"`
	// Sandboxes counts the node's sandboxes by engine state (starting,
	// running, pausing, paused, resuming, dead); Warm its pooled ones.
	Sandboxes map[string]int `json:"sandboxes"`
	Warm      int            `json:"warm"`
	// CreateSuccesses and CreateFails count the node's creates since its
	// agent started.
	CreateSuccesses int64 `json:"createSuccesses"`
	CreateFails     int64 `json:"createFails"`
}

// NodeView is a node as the control plane sees it: its state and its last
// report.
type NodeView struct {
	ID string
	// State is NodeReady, NodeDraining or NodeUnhealthy (a silent node,
	// whatever the operator set).
	State string
	// HeartbeatAt is the node's last heartbeat, Silence how long ago it was
	// by the store's clock.
	HeartbeatAt time.Time
	Silence     time.Duration
	Report      NodeReport
}

// reportOf turns a NodeInfo answer into the report a heartbeat stores.
func reportOf(m *agentv1.NodeInfoResponse) NodeReport {
	r := NodeReport{
		Version: m.GetVersion(), Commit: m.GetCommit(), Instance: m.GetInstance(),
		CPUCount: int(m.GetCpuCount()), CPUPercent: m.GetCpuPercent(),
		MemoryTotalBytes: m.GetMemoryTotalBytes(), MemoryUsedBytes: m.GetMemoryUsedBytes(),
		LimitCPUs: int(m.GetLimitCpus()), LimitMemoryBytes: m.GetLimitMemoryBytes(),
		CommittedCPUs: int(m.GetCommittedCpus()), CommittedMemoryBytes: m.GetCommittedMemoryBytes(),
		DataDir: m.GetDataDir(), DiskMountPoint: m.GetDiskMountPoint(), DiskDevice: m.GetDiskDevice(),
		DiskFilesystemType: m.GetDiskFilesystemType(), DiskTotalBytes: m.GetDiskTotalBytes(), DiskUsedBytes: m.GetDiskUsedBytes(),
		Sandboxes: make(map[string]int, len(m.GetSandboxes())), Warm: int(m.GetWarmSandboxes()),
		CreateSuccesses: m.GetCreateSuccesses(), CreateFails: m.GetCreateFails(),
	}
	for state, n := range m.GetSandboxes() {
		r.Sandboxes[state] = int(n)
	}
	return r
}

// heartbeatOnce asks the Service's own node for its report and stores it as
// its heartbeat. A node that does not answer leaves its last heartbeat as it
// was: the silence that follows is what makes it unhealthy.
func (s *Service) heartbeatOnce(ctx context.Context) {
	if s.node == nil {
		return
	}
	if err := s.Heartbeat(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("node heartbeat", "node", LocalNodeID, "err", err)
	}
}

// Heartbeat asks the Service's own node for its report now and stores it as
// its heartbeat; Run calls it every HeartbeatInterval.
func (s *Service) Heartbeat(ctx context.Context) error {
	if s.node == nil {
		return newError(ErrUnavailable, "this control plane runs no node of its own")
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.HeartbeatInterval)
	defer cancel()
	resp, err := s.node.NodeInfo(cctx, connect.NewRequest(&agentv1.NodeInfoRequest{}))
	if err != nil {
		return fmt.Errorf("ask node %s for its report: %w", LocalNodeID, err)
	}
	b, err := json.Marshal(reportOf(resp.Msg))
	if err != nil {
		return fmt.Errorf("encode the report of node %s: %w", LocalNodeID, err)
	}
	return s.store.PutNodeHeartbeat(ctx, LocalNodeID, "", b)
}

// NodeReported stores the heartbeat of remote node id, whose agent is at
// address, with its report. A node heard for the first time, after a silence
// longer than NodeLostAfter, at a new address or from a new run of its agent
// is then reconciled (see
// ReconcileNode), in the background: its sandboxes are reachable again.
func (s *Service) NodeReported(ctx context.Context, id, address string, m *agentv1.NodeInfoResponse) error {
	if s.cfg.Remote == nil {
		return newError(ErrUnavailable, "this control plane takes no remote nodes")
	}
	if id == LocalNodeID || !validNodeID(id) {
		return invalidf("node name %q: want 1 to 63 lower-case letters, digits and dashes, not %q", id, LocalNodeID)
	}
	if host, port, err := net.SplitHostPort(address); err != nil || host == "" || port == "" {
		return invalidf("agent_address %q: want HOST:PORT", address)
	}
	b, err := json.Marshal(reportOf(m))
	if err != nil {
		return internal("encode the report of node "+id, err)
	}
	prev, err := s.store.GetNode(ctx, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return internal("read node "+id, err)
	}
	if err := s.store.PutNodeHeartbeat(ctx, id, address, b); err != nil {
		return internal("store the heartbeat of node "+id, err)
	}
	s.nodeAddrs.forget(id)
	if prev != nil && prev.Silence > s.cfg.NodeLostAfter {
		if err := s.forNode(ctx, id, func(sb *store.Sandbox) {
			s.event(ctx, sb.ID, "node %s reported again after %s of silence", id, prev.Silence.Round(time.Second))
		}); err != nil {
			s.log.Warn("tell the sandboxes of a returning node", "node", id, "err", err)
		}
	}
	var was NodeReport
	if prev != nil {
		_ = json.Unmarshal(prev.Report, &was)
	}
	if prev == nil || prev.Silence > s.cfg.NodeLostAfter || prev.Address != address || was.Instance != m.GetInstance() {
		s.log.Info("node reported", "node", id, "address", address, "returning", prev != nil)
		go func() {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.NodeTimeout)
			defer cancel()
			if err := s.ReconcileNode(rctx, id); err != nil {
				s.log.Warn("reconcile a node that reported", "node", id, "err", err)
			}
		}()
	}
	return nil
}

// validNodeID reports a node name fit for IDs, logs and metric labels.
func validNodeID(id string) bool {
	if id == "" || len(id) > 63 || id[0] == '-' {
		return false
	}
	for _, r := range id {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return false
		}
	}
	return true
}

// Nodes reports every node that ever sent a heartbeat, by ID: unhealthy when
// it has been silent for longer than NodeLostAfter, else as the operator set
// it (ready or draining).
func (s *Service) Nodes(ctx context.Context) ([]NodeView, error) {
	nodes, err := s.store.ListNodes(ctx)
	if err != nil {
		return nil, internal("list nodes", err)
	}
	out := make([]NodeView, 0, len(nodes))
	for _, n := range nodes {
		v := NodeView{ID: n.ID, State: n.Status, HeartbeatAt: n.HeartbeatAt, Silence: n.Silence}
		if n.Silence > s.cfg.NodeLostAfter {
			v.State = NodeUnhealthy
		}
		if err := json.Unmarshal(n.Report, &v.Report); err != nil {
			return nil, internal("read the report of node "+n.ID, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// SetNodeStatus sets node id ready (it takes new sandboxes) or draining (it
// takes none; those it holds go on). A node never heard from is not found.
func (s *Service) SetNodeStatus(ctx context.Context, id, status string) error {
	if status != NodeReady && status != NodeDraining {
		return invalidf("status: %q is not %q or %q", status, NodeReady, NodeDraining)
	}
	err := s.store.SetNodeStatus(ctx, id, status)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return newError(ErrNotFound, "node %s not found", id)
	case err != nil:
		return internal("set the status of node "+id, err)
	}
	s.log.Info("node status set", "node", id, "status", status)
	return nil
}

// admitOnNode refuses a new sandbox on node id while it is draining. A node
// never heard from yet takes them.
func (s *Service) admitOnNode(ctx context.Context, id string) error {
	n, err := s.store.GetNode(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return internal("read node "+id, err)
	case n.Status == NodeDraining:
		return newError(ErrUnavailable, "node %s is draining: it takes no new sandboxes", id)
	}
	return nil
}
