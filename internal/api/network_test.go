package api

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// TestNetworkOnCreate: what the node is asked to enforce for each E2B
// network configuration, and the 400s of configurations it cannot.
func TestNetworkOnCreate(t *testing.T) {
	e := newEnv(t)
	type want struct {
		internet                        bool
		allowCIDRs, allowDomains, denyC []string
	}
	ok := []struct {
		name string
		body string
		want want
	}{
		{"no network", `{}`, want{internet: true}},
		{"deny one address", `{"network":{"denyOut":["1.1.1.1"]}}`, want{true, nil, nil, []string{"1.1.1.1/32"}}},
		{"all traffic denied", `{"network":{"denyOut":["0.0.0.0/0"]}}`, want{internet: false}},
		{"allow beats deny", `{"network":{"allowOut":["8.8.8.8","10.1.0.0/16"],"denyOut":["0.0.0.0/0"]}}`,
			want{true, []string{"8.8.8.8/32", "10.1.0.0/16"}, nil, []string{"0.0.0.0/0"}}},
		{"domains", `{"network":{"allowOut":["Example.com","*.example.org"],"denyOut":["0.0.0.0/0"]}}`,
			want{true, nil, []string{"example.com", "*.example.org"}, []string{"0.0.0.0/0"}}},
		{"allowOut alone opens nothing more", `{"network":{"allowOut":["8.8.8.8"]}}`,
			want{true, []string{"8.8.8.8/32"}, nil, nil}},
		{"no internet keeps allowOut", `{"allow_internet_access":false,"network":{"allowOut":["8.8.8.8"],"denyOut":["9.9.9.9"]}}`,
			want{true, []string{"8.8.8.8/32"}, nil, []string{"0.0.0.0/0"}}},
		{"no internet", `{"allow_internet_access":false}`, want{internet: false}},
		{"IPv6 deny is already in force", `{"network":{"denyOut":["::/0"]}}`, want{internet: true}},
		{"ingress settings", `{"network":{"maskRequestHost":"app.example.com:${PORT}","httpsPorts":[8443]}}`, want{internet: true}},
	}
	for _, tt := range ok {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do("POST", "/v2/sandboxes", tt.body)
			if r.Status != 201 {
				t.Fatalf("create: %d %s", r.Status, r.Body)
			}
			var sb sandboxJSON
			r.decode(t, &sb)
			sp := e.node.Spec(sb.SandboxID)
			eg := sp.GetEgress()
			if sp.GetAllowInternetAccess() != tt.want.internet || !slices.Equal(eg.GetAllowCidrs(), tt.want.allowCIDRs) ||
				!slices.Equal(eg.GetAllowDomains(), tt.want.allowDomains) || !slices.Equal(eg.GetDenyCidrs(), tt.want.denyC) {
				t.Fatalf("node asked for internet %t, rules %v; want %+v", sp.GetAllowInternetAccess(), eg, tt.want)
			}
		})
	}

	bad := []struct{ name, body, msg string }{
		{"domain without deny all", `{"network":{"allowOut":["example.com"]}}`,
			"network.allowOut: When specifying allowed domains in allow out, you must include 'ALL_TRAFFIC' in deny out"},
		{"bad allowed address", `{"network":{"allowOut":["1.2.3.4/40"],"denyOut":["0.0.0.0/0"]}}`, "network.allowOut: invalid allowed address 1.2.3.4/40"},
		{"IPv6 allowed", `{"network":{"allowOut":["2001:db8::1"]}}`, "network.allowOut: invalid allowed address 2001:db8::1"},
		{"domain denied", `{"network":{"denyOut":["example.com"]}}`, "network.denyOut: invalid denied CIDR example.com"},
		{"unspecified address denied", `{"network":{"denyOut":["0.0.0.0"]}}`, "network.denyOut: invalid denied CIDR 0.0.0.0"},
		{"bad mask", `{"network":{"maskRequestHost":"bad host"}}`, "network.maskRequestHost: mask request host is not valid: bad host"},
		{"non-ASCII mask", `{"network":{"maskRequestHost":"hôst"}}`, "network.maskRequestHost"},
		{"bad mask port", `{"network":{"maskRequestHost":"h:99999"}}`, "network.maskRequestHost"},
		{"daemon port over HTTPS", `{"network":{"httpsPorts":[49983]}}`, "network.httpsPorts"},
		{"rules", `{"network":{"rules":{"api.example.com":[{"transform":{"headers":{"A":"b"}}}]}}}`, "network.rules"},
		{"egressProxy", `{"network":{"egressProxy":{"address":"p:1080"}}}`, "network.egressProxy"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do("POST", "/v2/sandboxes", tt.body)
			if r.Status != 400 || !strings.Contains(r.errorMessage(t), tt.msg) {
				t.Fatalf("create: %d %s; want 400 with %q", r.Status, r.Body, tt.msg)
			}
		})
	}
}

// TestUpdateNetwork: PUT /sandboxes/{id}/network replaces the rules on the
// node and in the detail, and answers E2B's errors.
func TestUpdateNetwork(t *testing.T) {
	e := newEnv(t)
	var sb sandboxJSON
	e.do("POST", "/v2/sandboxes", `{"network":{"allowPublicTraffic":false,"maskRequestHost":"m.example.com","denyOut":["1.1.1.1"]}}`).decode(t, &sb)
	path := "/sandboxes/" + sb.SandboxID + "/network"

	r := e.do("PUT", path, `{"allowOut":["api.example.com"],"denyOut":["0.0.0.0/0"]}`)
	if r.Status != 204 {
		t.Fatalf("update: %d %s", r.Status, r.Body)
	}
	sp := e.node.Spec(sb.SandboxID)
	if !sp.GetAllowInternetAccess() || !slices.Equal(sp.GetEgress().GetAllowDomains(), []string{"api.example.com"}) ||
		!slices.Equal(sp.GetEgress().GetDenyCidrs(), []string{"0.0.0.0/0"}) {
		t.Fatalf("node spec after the update: %v", sp)
	}
	d := detailNetwork(t, e, sb.SandboxID)
	if !slices.Equal(d.AllowOut, []string{"api.example.com"}) || !slices.Equal(d.DenyOut, []string{"0.0.0.0/0"}) ||
		d.AllowPublicTraffic == nil || *d.AllowPublicTraffic || d.MaskRequestHost != "m.example.com" {
		t.Fatalf("detail network after the update: %+v", d)
	}
	// The traffic proxy still masks and still wants the token.
	tgt, err := e.svc.ResolveSandbox(context.Background(), sb.SandboxID)
	if err != nil || tgt.MaskRequestHost != "m.example.com" || tgt.TrafficAccessToken == "" {
		t.Fatalf("ResolveSandbox = %+v, %v", tgt, err)
	}

	// A full replace: what is left out is cleared.
	if r := e.do("PUT", path, `{}`); r.Status != 204 {
		t.Fatalf("clear: %d %s", r.Status, r.Body)
	}
	if sp := e.node.Spec(sb.SandboxID); !sp.GetAllowInternetAccess() || sp.GetEgress() != nil {
		t.Fatalf("node spec after clearing: %v", sp)
	}
	if d := detailNetwork(t, e, sb.SandboxID); d.AllowOut != nil || d.DenyOut != nil || d.MaskRequestHost != "m.example.com" {
		t.Fatalf("detail network after clearing: %+v", d)
	}
	if r := e.do("PUT", path, `{"allow_internet_access":false}`); r.Status != 204 {
		t.Fatalf("no internet: %d %s", r.Status, r.Body)
	}
	if sp := e.node.Spec(sb.SandboxID); sp.GetAllowInternetAccess() {
		t.Fatalf("node spec after allow_internet_access false: %v", sp)
	}

	for _, tt := range []struct {
		name, path, body string
		status           int
		msg              string
	}{
		{"no body", path, "", 400, "request body"},
		{"null body", path, "null", 400, "request body"},
		{"bad entry", path, `{"denyOut":["nope"]}`, 400, "network.denyOut: invalid denied CIDR nope"},
		{"domain without deny all", path, `{"allowOut":["x.com"]}`, 400, "ALL_TRAFFIC"},
		{"rules", path, `{"rules":{"x.com":[{}]}}`, 400, "network.rules"},
		{"egressProxy", path, `{"egressProxy":{"address":"p:1"}}`, 400, "network.egressProxy"},
		{"wrong type", path, `{"allowOut":"1.1.1.1"}`, 400, "allowOut"},
		{"unknown sandbox", "/sandboxes/" + unknownSandbox + "/network", `{}`, 404, "not found"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do("PUT", tt.path, tt.body)
			if r.Status != tt.status || !strings.Contains(r.errorMessage(t), tt.msg) {
				t.Fatalf("%d %s; want %d with %q", r.Status, r.Body, tt.status, tt.msg)
			}
		})
	}

	if r := e.do("POST", "/sandboxes/"+sb.SandboxID+"/pause", ""); r.Status != 204 {
		t.Fatalf("pause: %d %s", r.Status, r.Body)
	}
	r = e.do("PUT", path, `{"denyOut":["1.1.1.1"]}`)
	if r.Status != 409 || r.errorMessage(t) != `Sandbox "`+sb.SandboxID+`" is in paused state` {
		t.Fatalf("update of a paused sandbox: %d %s", r.Status, r.Body)
	}
}

// detailNetwork returns the network configuration the detail reports.
func detailNetwork(t *testing.T, e *env, id string) (n struct {
	AllowOut           []string `json:"allowOut"`
	DenyOut            []string `json:"denyOut"`
	AllowPublicTraffic *bool    `json:"allowPublicTraffic"`
	MaskRequestHost    string   `json:"maskRequestHost"`
}) {
	t.Helper()
	var d struct {
		Network json.RawMessage `json:"network"`
	}
	e.do("GET", "/sandboxes/"+id, "").decode(t, &d)
	if len(d.Network) > 0 {
		if err := json.Unmarshal(d.Network, &n); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// exerciseNetwork calls PUT /sandboxes/{id}/network with its main outcomes,
// for TestSpecConformance.
func exerciseNetwork(t *testing.T, e *env, want func(*response, int) *response) {
	t.Helper()
	var sb sandboxJSON
	want(e.do("POST", "/v2/sandboxes", `{"network":{"denyOut":["1.1.1.1"]}}`), 201).decode(t, &sb)
	path := "/sandboxes/" + sb.SandboxID + "/network"
	want(e.do("PUT", path, `{"allowOut":["example.com"],"denyOut":["0.0.0.0/0"],"allow_internet_access":true}`), 204)
	want(e.do("PUT", path, `{"denyOut":["example.com"]}`), 400)
	want(e.do("PUT", "/sandboxes/"+unknownSandbox+"/network", `{}`), 404)
	want(e.do("POST", "/sandboxes/"+sb.SandboxID+"/pause", ""), 204)
	want(e.do("PUT", path, `{}`), 409)
}
