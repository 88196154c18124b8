package cluster

import (
	"context"
	"errors"
	"net/http"
	"time"

	"connectrpc.com/connect"

	"lelantos.dev/lelantos/internal/clustertls"
	"lelantos.dev/lelantos/internal/controlplane"
	agentv1 "lelantos.dev/lelantos/internal/gen/agent/v1"
	clusterv1 "lelantos.dev/lelantos/internal/gen/cluster/v1"
	"lelantos.dev/lelantos/internal/gen/cluster/v1/clusterv1connect"
)

// Registry is what the cluster endpoint tells of the nodes that report; the
// control plane's Service implements it.
type Registry interface {
	// NodeReported stores a heartbeat of node id, whose agent is at
	// address, with its report.
	NodeReported(ctx context.Context, id, address string, report *agentv1.NodeInfoResponse) error
}

// Handler serves the cluster endpoint (ClusterService) to nodes. Serve it
// only behind clustertls.ServerConfig for node clients: the node's name is
// read from its verified certificate.
type Handler struct {
	reg      Registry
	interval time.Duration
}

// NewHandler returns the cluster endpoint, asking nodes for a heartbeat every
// interval; mount it at the returned path.
func NewHandler(reg Registry, interval time.Duration) (string, http.Handler) {
	return clusterv1connect.NewClusterServiceHandler(&Handler{reg: reg, interval: interval})
}

// Heartbeat registers and reports the calling node.
func (h *Handler) Heartbeat(ctx context.Context, req *connect.Request[clusterv1.HeartbeatRequest]) (*connect.Response[clusterv1.HeartbeatResponse], error) {
	id, ok := nodeName(ctx)
	if !ok {
		return nil, connect.NewError(connect.CodeUnauthenticated, errors.New("heartbeat: a node certificate of the cluster CA is required"))
	}
	if req.Msg.GetReport() == nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("heartbeat: report is required"))
	}
	if err := h.reg.NodeReported(ctx, id, req.Msg.GetAgentAddress(), req.Msg.GetReport()); err != nil {
		return nil, connect.NewError(codeOf(err), err)
	}
	return connect.NewResponse(&clusterv1.HeartbeatResponse{IntervalSeconds: int32(max(h.interval/time.Second, 1))}), nil
}

// peerKey carries the verified peer certificate's name in a request's
// context.
type peerKey struct{}

// WithPeer puts the name of a request's verified node certificate in its
// context; wrap the Handler in it, behind the TLS listener.
func WithPeer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			if name, role, ok := clustertls.PeerName(*r.TLS); ok && role == clustertls.RoleNode {
				r = r.WithContext(context.WithValue(r.Context(), peerKey{}, name))
			}
		}
		next.ServeHTTP(w, r)
	})
}

// nodeName is the name WithPeer found.
func nodeName(ctx context.Context) (string, bool) {
	name, ok := ctx.Value(peerKey{}).(string)
	return name, ok && name != ""
}

// codeOf maps a Registry's error to a connect code: a refusal the node can
// fix (a bad name or address) is InvalidArgument, one of the control plane
// Unavailable.
func codeOf(err error) connect.Code {
	if errors.Is(err, controlplane.ErrInvalidArgument) {
		return connect.CodeInvalidArgument
	}
	return connect.CodeUnavailable
}
