// Package controlplanetest provides an in-memory node agent for tests of the
// control plane and its HTTP API: it keeps sandbox states like a real node,
// can be slowed down or made to fail, and counts calls.
package controlplanetest

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	agentv1 "lelantos.dev/lelantos/internal/gen/agent/v1"
)

// Operation names for Fail and Calls.
const (
	OpCreate  = "create"
	OpPause   = "pause"
	OpResume  = "resume"
	OpKill    = "kill"
	OpList    = "list"
	OpMetrics = "metrics"
	OpLogs    = "logs"
	OpInfo    = "nodeinfo"
)

// Node is a fake agentv1connect.AgentServiceClient. The zero value is not
// usable; call NewNode. It is safe for concurrent use.
type Node struct {
	mu        sync.Mutex
	sandboxes map[string]*agentv1.SandboxStatus
	logs      map[string][]*agentv1.LogLine
	failures  map[string]error
	calls     map[string]int
	delay     time.Duration
	next      int
	inflight  map[string]int
	overlaps  int
	cpuPct    float64 // of the samples SandboxMetrics returns
	// snap is the state of forks, snapshots and pause kinds (snapshots.go).
	snap snapState
}

// NewNode returns an empty fake node.
func NewNode() *Node {
	return &Node{
		sandboxes: map[string]*agentv1.SandboxStatus{},
		logs:      map[string][]*agentv1.LogLine{},
		failures:  map[string]error{},
		calls:     map[string]int{},
		inflight:  map[string]int{},
		cpuPct:    12.5,
	}
}

// SetDelay makes every sandbox operation take d.
func (n *Node) SetDelay(d time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.delay = d
}

// Fail makes operation op fail with err (nil clears it).
func (n *Node) Fail(op string, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err == nil {
		delete(n.failures, op)
		return
	}
	n.failures[op] = err
}

// Calls is how many times op was called.
func (n *Node) Calls(op string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.calls[op]
}

// Overlaps is how many times an operation on a sandbox started while another
// one on the same sandbox was still running.
func (n *Node) Overlaps() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.overlaps
}

// State returns the node's state of sandbox id and whether it holds it.
func (n *Node) State(id string) (agentv1.SandboxState, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	st, ok := n.sandboxes[id]
	if !ok {
		return agentv1.SandboxState_SANDBOX_STATE_UNSPECIFIED, false
	}
	return st.GetState(), true
}

// Put sets the node's status of a sandbox (to stage a restart).
func (n *Node) Put(st *agentv1.SandboxStatus) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.sandboxes[st.GetSandboxId()] = proto.Clone(st).(*agentv1.SandboxStatus)
}

// Remove forgets a sandbox, as if the node lost it.
func (n *Node) Remove(id string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.sandboxes, id)
}

// Len is the number of sandboxes the node holds.
func (n *Node) Len() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.sandboxes)
}

// AddLog appends a plain console line of sandbox id, at level info.
func (n *Node) AddLog(id string, ts time.Time, line string) {
	n.AddLogLine(id, &agentv1.LogLine{Timestamp: timestamppb.New(ts), Line: line, Source: agentv1.LogSource_LOG_SOURCE_CONSOLE,
		Level: "info", Message: line})
}

// AddLogLine appends a line of sandbox id as the node would report it (lines
// are kept in the order added, which should be their time order).
func (n *Node) AddLogLine(id string, l *agentv1.LogLine) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.logs[id] = append(n.logs[id], proto.Clone(l).(*agentv1.LogLine))
}

// levelRank orders the log levels.
func levelRank(level string) int {
	return map[string]int{"debug": 0, "info": 1, "warn": 2, "error": 3}[level]
}

// begin records a call of op on sandbox id, applies the delay outside the
// lock, and returns the injected failure, if any, and the end function.
func (n *Node) begin(ctx context.Context, op, id string) (func(), error) {
	n.mu.Lock()
	n.calls[op]++
	if id != "" {
		if n.inflight[id] > 0 {
			n.overlaps++
		}
		n.inflight[id]++
	}
	delay, fail := n.delay, n.failures[op]
	n.mu.Unlock()
	end := func() {
		if id == "" {
			return
		}
		n.mu.Lock()
		n.inflight[id]--
		n.mu.Unlock()
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			end()
			return nil, connect.NewError(connect.CodeDeadlineExceeded, ctx.Err())
		}
	}
	if fail != nil {
		end()
		return nil, fail
	}
	return end, nil
}

func notFound(id string) error {
	return connect.NewError(connect.CodeNotFound, fmt.Errorf("sandbox %s not found", id))
}

// CreateSandbox makes a running sandbox with the next address 10.0.0.N.
func (n *Node) CreateSandbox(ctx context.Context, req *connect.Request[agentv1.CreateSandboxRequest]) (*connect.Response[agentv1.CreateSandboxResponse], error) {
	sp := req.Msg.GetSpec()
	end, err := n.begin(ctx, OpCreate, sp.GetSandboxId())
	if err != nil {
		return nil, err
	}
	defer end()
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.sandboxes[sp.GetSandboxId()]; ok {
		return nil, connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("sandbox %s exists", sp.GetSandboxId()))
	}
	if err := n.checkSnapshotLocked(sp); err != nil {
		return nil, err
	}
	n.next++
	st := &agentv1.SandboxStatus{
		SandboxId: sp.GetSandboxId(), State: agentv1.SandboxState_SANDBOX_STATE_RUNNING,
		Address: fmt.Sprintf("10.0.%d.%d", n.next/250, n.next%250+1), RuntimeClass: sp.GetRuntimeClass(),
		Spec: proto.Clone(sp).(*agentv1.SandboxSpec),
	}
	n.sandboxes[st.SandboxId] = st
	return connect.NewResponse(&agentv1.CreateSandboxResponse{Status: proto.Clone(st).(*agentv1.SandboxStatus)}), nil
}

// PauseSandbox pauses a running sandbox.
func (n *Node) PauseSandbox(ctx context.Context, req *connect.Request[agentv1.PauseSandboxRequest]) (*connect.Response[agentv1.PauseSandboxResponse], error) {
	st, err := n.transition(ctx, OpPause, req.Msg.GetSandboxId(),
		agentv1.SandboxState_SANDBOX_STATE_RUNNING, agentv1.SandboxState_SANDBOX_STATE_PAUSED)
	if err != nil {
		return nil, err
	}
	n.notePause(req.Msg)
	return connect.NewResponse(&agentv1.PauseSandboxResponse{Status: st}), nil
}

// ResumeSandbox resumes a paused sandbox.
func (n *Node) ResumeSandbox(ctx context.Context, req *connect.Request[agentv1.ResumeSandboxRequest]) (*connect.Response[agentv1.ResumeSandboxResponse], error) {
	st, err := n.transition(ctx, OpResume, req.Msg.GetSandboxId(),
		agentv1.SandboxState_SANDBOX_STATE_PAUSED, agentv1.SandboxState_SANDBOX_STATE_RUNNING)
	if err != nil {
		return nil, err
	}
	n.noteResume(req.Msg)
	return connect.NewResponse(&agentv1.ResumeSandboxResponse{Status: st}), nil
}

// transition moves sandbox id from state from to state to, as operation op, and
// returns a copy of its new status; any other state is FailedPrecondition.
func (n *Node) transition(ctx context.Context, op, id string, from, to agentv1.SandboxState) (*agentv1.SandboxStatus, error) {
	end, err := n.begin(ctx, op, id)
	if err != nil {
		return nil, err
	}
	defer end()
	n.mu.Lock()
	defer n.mu.Unlock()
	st, ok := n.sandboxes[id]
	if !ok {
		return nil, notFound(id)
	}
	if st.State != from {
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("sandbox %s is %s", id, st.State))
	}
	st.State = to
	return proto.Clone(st).(*agentv1.SandboxStatus), nil
}

// KillSandbox removes a sandbox; unknown is NotFound.
func (n *Node) KillSandbox(ctx context.Context, req *connect.Request[agentv1.KillSandboxRequest]) (*connect.Response[agentv1.KillSandboxResponse], error) {
	id := req.Msg.GetSandboxId()
	end, err := n.begin(ctx, OpKill, id)
	if err != nil {
		return nil, err
	}
	defer end()
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.sandboxes[id]; !ok {
		return nil, notFound(id)
	}
	delete(n.sandboxes, id)
	return connect.NewResponse(&agentv1.KillSandboxResponse{}), nil
}

// ListSandboxes reports every sandbox held, by ID.
func (n *Node) ListSandboxes(ctx context.Context, _ *connect.Request[agentv1.ListSandboxesRequest]) (*connect.Response[agentv1.ListSandboxesResponse], error) {
	end, err := n.begin(ctx, OpList, "")
	if err != nil {
		return nil, err
	}
	defer end()
	n.mu.Lock()
	defer n.mu.Unlock()
	out := &agentv1.ListSandboxesResponse{}
	for _, st := range n.sandboxes {
		out.Sandboxes = append(out.Sandboxes, proto.Clone(st).(*agentv1.SandboxStatus))
	}
	sort.Slice(out.Sandboxes, func(i, j int) bool { return out.Sandboxes[i].SandboxId < out.Sandboxes[j].SandboxId })
	return connect.NewResponse(out), nil
}

// SetCPU sets the CPU percentage of the samples SandboxMetrics returns (12.5
// unless set).
func (n *Node) SetCPU(pct float64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cpuPct = pct
}

// SandboxMetrics returns a fixed sample stamped now for a held sandbox.
func (n *Node) SandboxMetrics(ctx context.Context, req *connect.Request[agentv1.SandboxMetricsRequest]) (*connect.Response[agentv1.SandboxMetricsResponse], error) {
	id := req.Msg.GetSandboxId()
	n.mu.Lock()
	n.calls[OpMetrics]++
	fail := n.failures[OpMetrics]
	st, ok := n.sandboxes[id]
	n.mu.Unlock()
	if fail != nil {
		return nil, fail
	}
	if !ok {
		return nil, notFound(id)
	}
	cpus := st.GetSpec().GetCpuCount()
	mem := int64(st.GetSpec().GetMemoryMb()) << 20
	n.mu.Lock()
	pct := n.cpuPct
	n.mu.Unlock()
	return connect.NewResponse(&agentv1.SandboxMetricsResponse{Metric: &agentv1.Metric{
		Timestamp: timestamppb.Now(), CpuCount: cpus, CpuUsedPct: pct,
		MemUsed: mem / 4, MemTotal: mem, MemCache: mem / 16,
		DiskUsed: 1 << 20, DiskTotal: int64(st.GetSpec().GetDiskSizeMb()) << 20,
	}}), nil
}

// SandboxLogs returns the lines added with AddLog and AddLogLine that the
// request selects, as the engine does: its window, direction, filters and limit.
func (n *Node) SandboxLogs(ctx context.Context, req *connect.Request[agentv1.SandboxLogsRequest]) (*connect.Response[agentv1.SandboxLogsResponse], error) {
	id := req.Msg.GetSandboxId()
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls[OpLogs]++
	if fail := n.failures[OpLogs]; fail != nil {
		return nil, fail
	}
	lines, ok := n.logs[id]
	if _, held := n.sandboxes[id]; !held && !ok {
		return nil, notFound(id)
	}
	m := req.Msg
	out := &agentv1.SandboxLogsResponse{}
	for i := range lines {
		l := lines[i]
		if m.GetBackward() {
			l = lines[len(lines)-1-i]
		}
		ts := l.GetTimestamp().AsTime()
		switch {
		case m.GetStart() != nil && ts.Before(m.GetStart().AsTime()),
			m.GetEnd() != nil && ts.After(m.GetEnd().AsTime()),
			m.GetMinLevel() != "" && levelRank(l.GetLevel()) < levelRank(m.GetMinLevel()),
			m.GetSearch() != "" && !strings.Contains(l.GetMessage(), m.GetSearch()):
			continue
		}
		if lim := m.GetLimit(); lim > 0 && int32(len(out.Logs)) >= lim {
			break
		}
		out.Logs = append(out.Logs, proto.Clone(l).(*agentv1.LogLine))
	}
	return connect.NewResponse(out), nil
}
