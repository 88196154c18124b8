package controlplane

import (
	"context"
	"encoding/json"
	"net"
	"strconv"
	"strings"

	"connectrpc.com/connect"

	agentv1 "lelantos.dev/lelantos/internal/gen/agent/v1"
	"lelantos.dev/lelantos/internal/network"
	"lelantos.dev/lelantos/internal/proxy"
	"lelantos.dev/lelantos/internal/store"
)

// AllTraffic is E2B's ALL_TRAFFIC: the deny entry meaning every IPv4
// destination, which allowed domains require.
const AllTraffic = "0.0.0.0/0"

// NetworkUpdate is a replacement of a running sandbox's egress rules (PUT
// /sandboxes/{id}/network). It is a full replace: what it leaves out is
// cleared.
type NetworkUpdate struct {
	// AllowOut and DenyOut are E2B's lists: addresses, CIDRs and (allow
	// only) domain names.
	AllowOut []string
	DenyOut  []string
	// AllowInternetAccess false denies all traffic but AllowOut; nil means
	// not set.
	AllowInternetAccess *bool
}

// storedNetwork is the part of a sandbox's stored network configuration
// (the JSON the client sent) that the control plane acts on.
type storedNetwork struct {
	AllowOut        []string `json:"allowOut"`
	DenyOut         []string `json:"denyOut"`
	MaskRequestHost string   `json:"maskRequestHost"`
	HTTPSPorts      []int    `json:"httpsPorts"`
}

// readNetwork decodes a stored network configuration; nil is none.
func readNetwork(raw json.RawMessage) (storedNetwork, error) {
	var n storedNetwork
	if len(rawJSON(raw)) == 0 {
		return n, nil
	}
	if err := json.Unmarshal(raw, &n); err != nil {
		return n, invalidf("network: %v", err)
	}
	return n, nil
}

// egressRules validates E2B's egress fields and returns what the node
// enforces: internet access, and the rules narrowing it (nil for none).
// allow_internet_access false replaces the deny list with all traffic,
// keeping the allow list; no allow rule and all traffic denied is no
// internet access at all. Messages follow E2B's, prefixed with the field.
func egressRules(allowInternet *bool, allowOut, denyOut []string) (bool, *agentv1.EgressRules, error) {
	for _, a := range allowOut {
		if _, err := network.ParseEgress([]string{a}, nil); err != nil {
			return false, nil, invalidf("network.allowOut: invalid allowed address %s (%v)", a, unwrapEgress(err))
		}
	}
	for _, d := range denyOut {
		if _, err := network.ParseEgress(nil, []string{d}); err != nil {
			return false, nil, invalidf("network.denyOut: invalid denied CIDR %s (%v)", d, unwrapEgress(err))
		}
	}
	deny := denyOut
	if allowInternet != nil && !*allowInternet {
		deny = []string{AllTraffic}
	}
	rules, err := network.ParseEgress(allowOut, deny)
	if err != nil {
		return false, nil, invalidf("network: %v", err)
	}
	if rules == nil {
		return true, nil, nil
	}
	all := false
	for _, p := range rules.DenyCIDRs {
		all = all || p.Bits() == 0
	}
	if len(rules.AllowDomains) > 0 && !all {
		return false, nil, invalidf("network.allowOut: When specifying allowed domains in allow out, you must include 'ALL_TRAFFIC' in deny out to block all other traffic.")
	}
	if all && len(rules.AllowCIDRs)+len(rules.AllowDomains) == 0 {
		return false, nil, nil
	}
	allow, denied := rules.Strings()
	out := &agentv1.EgressRules{DenyCidrs: denied}
	for _, a := range allow {
		if strings.Contains(a, "/") {
			out.AllowCidrs = append(out.AllowCidrs, a)
		} else {
			out.AllowDomains = append(out.AllowDomains, a)
		}
	}
	return true, out, nil
}

// unwrapEgress drops the entry from a parse error, which the caller names.
func unwrapEgress(err error) string {
	msg := err.Error()
	if _, rest, ok := strings.Cut(msg, ": "+network.ErrInvalidEgress.Error()+": "); ok {
		return rest
	}
	return msg
}

// checkNetwork validates a new sandbox's network configuration: the egress
// rules and the ingress settings (maskRequestHost, httpsPorts).
func checkNetwork(allowInternet *bool, raw json.RawMessage) error {
	n, err := readNetwork(raw)
	if err != nil {
		return err
	}
	if _, _, err := egressRules(allowInternet, n.AllowOut, n.DenyOut); err != nil {
		return err
	}
	if n.MaskRequestHost != "" && !validMaskHost(n.MaskRequestHost) {
		return invalidf("network.maskRequestHost: mask request host is not valid: %s", n.MaskRequestHost)
	}
	for _, p := range n.HTTPSPorts {
		if p < 1 || p > 65535 || p == proxy.EnvdPort {
			return invalidf("network.httpsPorts: port %d must be 1-65535 and not the daemon's %d", p, proxy.EnvdPort)
		}
	}
	return nil
}

// validMaskHost reports whether m, with ${PORT} standing for a port, is an
// ASCII host or host:port a Host header can carry.
func validMaskHost(m string) bool {
	m = strings.ReplaceAll(m, "${PORT}", "1")
	host := m
	if h, port, err := net.SplitHostPort(m); err == nil {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return false
		}
		host = h
	}
	if host == "" || len(host) > 253 {
		return false
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && !strings.ContainsRune("-._:[]", rune(c)) {
			return false
		}
	}
	return true
}

// nodeNetwork is what the node enforces for sb, from its stored
// configuration. Stored rules were validated when they were set; should
// they not read now, the sandbox gets no internet rather than no rules.
func nodeNetwork(sb *store.Sandbox) (bool, *agentv1.EgressRules) {
	n, err := readNetwork(sb.Network)
	if err != nil {
		return false, nil
	}
	allow, rules, err := egressRules(sb.AllowInternetAccess, n.AllowOut, n.DenyOut)
	if err != nil {
		return false, nil
	}
	return allow, rules
}

// ingressOf is how the traffic proxy treats requests into sb.
func ingressOf(sb *store.Sandbox) (mask string, httpsPorts []int) {
	n, _ := readNetwork(sb.Network)
	return n.MaskRequestHost, n.HTTPSPorts
}

// withEgress returns the stored configuration raw with its egress fields
// replaced by u's (the others, e.g. allowPublicTraffic, kept).
func withEgress(raw json.RawMessage, u NetworkUpdate) (json.RawMessage, error) {
	obj := map[string]json.RawMessage{}
	if len(rawJSON(raw)) > 0 {
		if err := json.Unmarshal(raw, &obj); err != nil {
			return nil, err
		}
	}
	delete(obj, "allowOut")
	delete(obj, "denyOut")
	for key, list := range map[string][]string{"allowOut": u.AllowOut, "denyOut": u.DenyOut} {
		if len(list) > 0 {
			b, err := json.Marshal(list)
			if err != nil {
				return nil, err
			}
			obj[key] = b
		}
	}
	if len(obj) == 0 {
		return nil, nil
	}
	return json.Marshal(obj)
}

// UpdateNetwork replaces the egress rules of running sandbox id of team
// teamID at once; what u leaves out is cleared. The ingress settings stay.
// A sandbox that is not running is ErrConflict.
func (s *Service) UpdateNetwork(ctx context.Context, teamID, id string, u NetworkUpdate) error {
	allow, rules, err := egressRules(u.AllowInternetAccess, u.AllowOut, u.DenyOut)
	if err != nil {
		return err
	}
	unlock, err := s.lock(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	sb, err := s.getOwned(ctx, teamID, id)
	if err != nil {
		return err
	}
	if sb.State != StateRunning {
		return newError(ErrConflict, "Sandbox %q is in %s state", id, sb.State)
	}
	raw, err := withEgress(sb.Network, u)
	if err != nil {
		return internal("update network configuration", err)
	}
	oldAllow, oldRules := nodeNetwork(sb)
	if err := s.setNodeNetwork(ctx, sb.NodeID, sb.ID, allow, rules); err != nil {
		return err
	}
	oldNetwork, oldInternet := sb.Network, sb.AllowInternetAccess
	sb.Network, sb.AllowInternetAccess = raw, u.AllowInternetAccess
	if err := s.save(ctx, sb); err != nil {
		sb.Network, sb.AllowInternetAccess = oldNetwork, oldInternet
		if rerr := s.setNodeNetwork(ctx, sb.NodeID, sb.ID, oldAllow, oldRules); rerr != nil {
			s.log.Error("put the old network rules back after a failed update", "sandbox", sb.ID, "err", rerr)
		}
		return err
	}
	s.event(ctx, sb.ID, "network rules replaced: allowOut %v, denyOut %v, internet access %t", u.AllowOut, u.DenyOut, allow)
	return nil
}

// setNodeNetwork asks node nodeID to enforce allow and rules for sandbox id.
func (s *Service) setNodeNetwork(ctx context.Context, nodeID, id string, allow bool, rules *agentv1.EgressRules) error {
	node, err := s.nodeOf(ctx, nodeID)
	if err != nil {
		return err
	}
	nctx, cancel := s.nodeCtx(ctx)
	defer cancel()
	_, err = node.UpdateSandboxNetwork(nctx, connect.NewRequest(&agentv1.UpdateSandboxNetworkRequest{
		SandboxId: id, AllowInternetAccess: allow, Egress: rules}))
	switch connect.CodeOf(err) {
	case connect.CodeFailedPrecondition:
		return newError(ErrConflict, "Sandbox %q is not running on its node", id)
	case connect.CodeNotFound:
		return notFound(id)
	}
	if err != nil {
		return nodeError("update sandbox network", id, err)
	}
	return nil
}
