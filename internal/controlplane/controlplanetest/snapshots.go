package controlplanetest

import (
	"context"
	"fmt"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	agentv1 "lelantos.dev/lelantos/internal/gen/agent/v1"
)

// Operation names of forks and snapshots for Fail and Calls.
const (
	OpFork           = "fork"
	OpSnapshot       = "snapshot"
	OpDeleteSnapshot = "delete-snapshot"
)

// snapState is what the fake node keeps of forks, snapshots and pauses; guarded
// by Node.mu.
type snapState struct {
	// snapshots holds each snapshot's source spec.
	snapshots map[string]*agentv1.SandboxSpec
	// forkRoom, when set (>= 0), is how many more forks fit on the node; the
	// others fail with ResourceExhausted.
	forkRoom *int
	// filesOnly records, per sandbox, whether its last pause kept only files;
	// coldBoot whether its last resume booted it fresh.
	filesOnly, coldBoot map[string]bool
}

// LimitForks makes only the next n forks fit on the node; the others fail with
// ResourceExhausted, as on a full node. A negative n removes the limit.
func (n *Node) LimitForks(room int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if room < 0 {
		n.snap.forkRoom = nil
		return
	}
	n.snap.forkRoom = &room
}

// Snapshots lists the IDs of the snapshots the node holds.
func (n *Node) Snapshots() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]string, 0, len(n.snap.snapshots))
	for id := range n.snap.snapshots {
		out = append(out, id)
	}
	return out
}

// SpecOf returns a copy of the spec sandbox id was made with, nil if the node
// does not hold it.
func (n *Node) SpecOf(id string) *agentv1.SandboxSpec {
	n.mu.Lock()
	defer n.mu.Unlock()
	st, ok := n.sandboxes[id]
	if !ok {
		return nil
	}
	return proto.Clone(st.GetSpec()).(*agentv1.SandboxSpec)
}

// LastPauseFilesOnly reports whether sandbox id's last pause kept only its
// files; LastResumeCold whether its last resume booted it fresh.
func (n *Node) LastPauseFilesOnly(id string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.snap.filesOnly[id]
}

// LastResumeCold reports whether sandbox id's last resume booted it fresh.
func (n *Node) LastResumeCold(id string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.snap.coldBoot[id]
}

func (n *Node) notePause(r *agentv1.PauseSandboxRequest) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.snap.filesOnly == nil {
		n.snap.filesOnly = map[string]bool{}
	}
	n.snap.filesOnly[r.GetSandboxId()] = r.GetFilesystemOnly()
}

func (n *Node) noteResume(r *agentv1.ResumeSandboxRequest) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.snap.coldBoot == nil {
		n.snap.coldBoot = map[string]bool{}
	}
	n.snap.coldBoot[r.GetSandboxId()] = r.GetColdBoot()
}

// checkSnapshotLocked refuses a create from a snapshot the node does not hold, as
// the engine does. Call with n.mu held.
func (n *Node) checkSnapshotLocked(sp *agentv1.SandboxSpec) error {
	id := sp.GetSnapshotId()
	if id == "" {
		return nil
	}
	if _, ok := n.snap.snapshots[id]; !ok {
		return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("snapshot %q not found", id))
	}
	return nil
}

// ForkSandbox makes running forks of a running sandbox, each with the source's
// spec under its own ID and token, as far as LimitForks allows.
func (n *Node) ForkSandbox(ctx context.Context, req *connect.Request[agentv1.ForkSandboxRequest]) (*connect.Response[agentv1.ForkSandboxResponse], error) {
	srcID := req.Msg.GetSandboxId()
	end, err := n.begin(ctx, OpFork, srcID)
	if err != nil {
		return nil, err
	}
	defer end()
	n.mu.Lock()
	defer n.mu.Unlock()
	src, ok := n.sandboxes[srcID]
	if !ok {
		return nil, notFound(srcID)
	}
	if src.GetState() != agentv1.SandboxState_SANDBOX_STATE_RUNNING {
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("sandbox %s is %s", srcID, src.GetState()))
	}
	out := &agentv1.ForkSandboxResponse{}
	for _, f := range req.Msg.GetForks() {
		if room := n.snap.forkRoom; room != nil {
			if *room == 0 {
				out.Results = append(out.Results, &agentv1.ForkResult{
					Error: "fork " + f.GetSandboxId() + ": node full", ErrorCode: int32(connect.CodeResourceExhausted)})
				continue
			}
			*room--
		}
		sp := proto.Clone(src.GetSpec()).(*agentv1.SandboxSpec)
		sp.SandboxId, sp.EnvdAccessToken = f.GetSandboxId(), f.GetEnvdAccessToken()
		n.next++
		st := &agentv1.SandboxStatus{
			SandboxId: sp.SandboxId, State: agentv1.SandboxState_SANDBOX_STATE_RUNNING,
			Address: fmt.Sprintf("10.0.%d.%d", n.next/250, n.next%250+1), RuntimeClass: sp.GetRuntimeClass(), Spec: sp,
		}
		n.sandboxes[st.SandboxId] = st
		out.Results = append(out.Results, &agentv1.ForkResult{Status: proto.Clone(st).(*agentv1.SandboxStatus)})
	}
	return connect.NewResponse(out), nil
}

// SnapshotSandbox keeps a snapshot of a running sandbox, which runs on.
func (n *Node) SnapshotSandbox(ctx context.Context, req *connect.Request[agentv1.SnapshotSandboxRequest]) (*connect.Response[agentv1.SnapshotSandboxResponse], error) {
	id := req.Msg.GetSandboxId()
	end, err := n.begin(ctx, OpSnapshot, id)
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
	if st.GetState() != agentv1.SandboxState_SANDBOX_STATE_RUNNING {
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("sandbox %s is %s", id, st.GetState()))
	}
	sid := req.Msg.GetSnapshotId()
	if _, dup := n.snap.snapshots[sid]; dup {
		return nil, connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("snapshot %s exists", sid))
	}
	if n.snap.snapshots == nil {
		n.snap.snapshots = map[string]*agentv1.SandboxSpec{}
	}
	src := proto.Clone(st.GetSpec()).(*agentv1.SandboxSpec)
	n.snap.snapshots[sid] = src
	return connect.NewResponse(&agentv1.SnapshotSandboxResponse{SnapshotId: sid, SizeBytes: 4 << 20,
		Source: proto.Clone(src).(*agentv1.SandboxSpec)}), nil
}

// DeleteSnapshot forgets a snapshot; unknown is NotFound.
func (n *Node) DeleteSnapshot(ctx context.Context, req *connect.Request[agentv1.DeleteSnapshotRequest]) (*connect.Response[agentv1.DeleteSnapshotResponse], error) {
	id := req.Msg.GetSnapshotId()
	end, err := n.begin(ctx, OpDeleteSnapshot, "")
	if err != nil {
		return nil, err
	}
	defer end()
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.snap.snapshots[id]; !ok {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("snapshot %s not found", id))
	}
	delete(n.snap.snapshots, id)
	return connect.NewResponse(&agentv1.DeleteSnapshotResponse{}), nil
}
