package agent

import (
	"context"
	"net/netip"

	"connectrpc.com/connect"

	agentv1 "lelantos.dev/lelantos/internal/gen/agent/v1"
	"lelantos.dev/lelantos/internal/network"
)

// egressFromProto converts rules as they are sent. An entry that does not
// parse is kept as an invalid prefix, which the network refuses
// (network.ErrInvalidEgress): bad rules fail the call rather than vanish.
func egressFromProto(p *agentv1.EgressRules) *network.Egress {
	if p == nil || len(p.GetAllowCidrs())+len(p.GetAllowDomains())+len(p.GetDenyCidrs()) == 0 {
		return nil
	}
	prefixes := func(ss []string) []netip.Prefix {
		out := make([]netip.Prefix, 0, len(ss))
		for _, s := range ss {
			pfx, _ := netip.ParsePrefix(s) // the zero Prefix when bad
			out = append(out, pfx)
		}
		return out
	}
	return &network.Egress{
		AllowCIDRs:   prefixes(p.GetAllowCidrs()),
		AllowDomains: append([]string(nil), p.GetAllowDomains()...),
		DenyCIDRs:    prefixes(p.GetDenyCidrs()),
	}
}

// egressToProto converts rules for the wire; nil for none.
func egressToProto(e *network.Egress) *agentv1.EgressRules {
	if e == nil {
		return nil
	}
	out := &agentv1.EgressRules{AllowDomains: append([]string(nil), e.AllowDomains...)}
	for _, p := range e.AllowCIDRs {
		out.AllowCidrs = append(out.AllowCidrs, p.String())
	}
	for _, p := range e.DenyCIDRs {
		out.DenyCidrs = append(out.DenyCidrs, p.String())
	}
	return out
}

// UpdateSandboxNetwork implements the agent service.
func (s *Server) UpdateSandboxNetwork(ctx context.Context, req *connect.Request[agentv1.UpdateSandboxNetworkRequest]) (*connect.Response[agentv1.UpdateSandboxNetworkResponse], error) {
	m := req.Msg
	st, err := s.engine.UpdateNetwork(ctx, m.GetSandboxId(), m.GetAllowInternetAccess(), egressFromProto(m.GetEgress()))
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&agentv1.UpdateSandboxNetworkResponse{Status: statusToProto(st)}), nil
}
