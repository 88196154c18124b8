package controlplanetest

import (
	"context"
	"fmt"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	agentv1 "lelantos.dev/lelantos/internal/gen/agent/v1"
)

// OpUpdateNetwork names UpdateSandboxNetwork for Fail and Calls.
const OpUpdateNetwork = "update-network"

// UpdateSandboxNetwork records a running sandbox's new internet access and
// egress rules in its spec, as a node enforces them; see Spec.
func (n *Node) UpdateSandboxNetwork(ctx context.Context, req *connect.Request[agentv1.UpdateSandboxNetworkRequest]) (*connect.Response[agentv1.UpdateSandboxNetworkResponse], error) {
	id := req.Msg.GetSandboxId()
	end, err := n.begin(ctx, OpUpdateNetwork, id)
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
	if st.Spec == nil {
		st.Spec = &agentv1.SandboxSpec{SandboxId: id}
	}
	st.Spec.AllowInternetAccess = req.Msg.GetAllowInternetAccess()
	st.Spec.Egress = proto.Clone(req.Msg.GetEgress()).(*agentv1.EgressRules)
	return connect.NewResponse(&agentv1.UpdateSandboxNetworkResponse{Status: proto.Clone(st).(*agentv1.SandboxStatus)}), nil
}

// Spec returns the spec the node holds for sandbox id (with the network
// choices of its last update), or nil.
func (n *Node) Spec(id string) *agentv1.SandboxSpec {
	n.mu.Lock()
	defer n.mu.Unlock()
	st, ok := n.sandboxes[id]
	if !ok || st.Spec == nil {
		return nil
	}
	return proto.Clone(st.Spec).(*agentv1.SandboxSpec)
}
