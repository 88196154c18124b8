package api

import (
	"encoding/json"
	"net/http"

	"lelantos.dev/lelantos/internal/controlplane"
)

// networkBody is the network configuration of a create body. The control
// plane validates and applies allowOut, denyOut, maskRequestHost and
// httpsPorts; rules and egressProxy, which Lelantos does not implement, are
// refused rather than ignored.
type networkBody struct {
	AllowOut           []string        `json:"allowOut,omitempty"`
	DenyOut            []string        `json:"denyOut,omitempty"`
	AllowPublicTraffic *bool           `json:"allowPublicTraffic,omitempty"`
	MaskRequestHost    *string         `json:"maskRequestHost,omitempty"`
	HTTPSPorts         []int           `json:"httpsPorts,omitempty"`
	Rules              json.RawMessage `json:"rules,omitempty"`
	EgressProxy        json.RawMessage `json:"egressProxy,omitempty"`
}

// refuseUnsupportedEgress answers the egress fields Lelantos does not
// implement with a 400 naming them.
func refuseUnsupportedEgress(rules, egressProxy json.RawMessage) error {
	if !isNull(rules) && string(rules) != "{}" {
		return badf("network.rules: egress transform rules are not supported")
	}
	if !isNull(egressProxy) {
		return badf("network.egressProxy: egress proxies are not supported")
	}
	return nil
}

// checkNetwork puts a create body's network configuration into req: kept as
// JSON (the detail returns it, the control plane reads its rules from it).
func checkNetwork(n *networkBody, req *controlplane.CreateRequest) error {
	if err := refuseUnsupportedEgress(n.Rules, n.EgressProxy); err != nil {
		return err
	}
	req.AllowPublicTraffic = n.AllowPublicTraffic
	n.Rules, n.EgressProxy = nil, nil
	raw, err := json.Marshal(n)
	if err != nil {
		return badf("network: %v", err)
	}
	req.Network = raw
	return nil
}

// networkUpdateBody is the body of PUT /sandboxes/{id}/network.
type networkUpdateBody struct {
	AllowOut            []string        `json:"allowOut"`
	DenyOut             []string        `json:"denyOut"`
	AllowInternetAccess *bool           `json:"allow_internet_access"`
	Rules               json.RawMessage `json:"rules"`
	EgressProxy         json.RawMessage `json:"egressProxy"`
}

// updateNetwork answers PUT /sandboxes/{id}/network: the running sandbox's
// egress rules are replaced at once (what the body leaves out is cleared);
// 204.
func (h *handler) updateNetwork(w http.ResponseWriter, r *http.Request) {
	var body *networkUpdateBody
	if err := h.decodeBody(w, r, &body); err != nil {
		writeBad(w, err)
		return
	}
	if body == nil {
		writeBad(w, badf("request body: a JSON object with the new rules is required"))
		return
	}
	if err := refuseUnsupportedEgress(body.Rules, body.EgressProxy); err != nil {
		writeBad(w, err)
		return
	}
	u := controlplane.NetworkUpdate{AllowOut: body.AllowOut, DenyOut: body.DenyOut, AllowInternetAccess: body.AllowInternetAccess}
	if err := h.svc.UpdateNetwork(r.Context(), teamOf(r), sandboxID(r), u); err != nil {
		h.fail(w, r, err)
		return
	}
	noContent(w)
}
