package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3filter"

	"lelantos.dev/lelantos/internal/controlplane"
	"lelantos.dev/lelantos/internal/store"
)

// TestSpecRejectsDrift shows that the conformance check can fail: answers
// with a missing, extra or mistyped field do not validate.
func TestSpecRejectsDrift(t *testing.T) {
	e := newEnv(t)
	var sb sandboxJSON
	res := e.do("POST", "/sandboxes", `{}`)
	res.decode(t, &sb)
	good := e.do("GET", "/sandboxes/"+sb.SandboxID, "")
	mutate := func(f func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(good.Body, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	tests := map[string][]byte{
		"missing workloadType": mutate(func(m map[string]any) { delete(m, "workloadType") }),
		"missing volumeMounts": mutate(func(m map[string]any) { delete(m, "volumeMounts") }),
		"undocumented field":   mutate(func(m map[string]any) { m["surprise"] = 1 }),
		"bad date":             mutate(func(m map[string]any) { m["startedAt"] = "yesterday" }),
		"bad state":            mutate(func(m map[string]any) { m["state"] = "pausing" }),
		"string cpuCount":      mutate(func(m map[string]any) { m["cpuCount"] = "2" }),
	}
	req := httptest.NewRequest("GET", "/sandboxes/"+sb.SandboxID, nil)
	route, params, err := e.router.FindRoute(req)
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range tests {
		err := openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
			RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
			Status:                 200, Header: http.Header{"Content-Type": {"application/json"}},
			Body: io.NopCloser(bytes.NewReader(body)),
		})
		if err == nil {
			t.Errorf("%s: validated", name)
		}
	}
}

// TestBadInput checks that invalid input is a 400 (413 for a huge body)
// whose message names the offending field, and never reaches the node.
func TestBadInput(t *testing.T) {
	e := newEnv(t)
	var sb sandboxJSON
	e.do("POST", "/sandboxes", `{}`).decode(t, &sb)
	id := sb.SandboxID
	tests := []struct {
		name, method, path, body string
		wantField                string
	}{
		{"timeout string", "POST", "/v2/sandboxes", `{"timeout":"300"}`, "timeout"},
		{"timeout fraction", "POST", "/v2/sandboxes", `{"timeout":1.5}`, "timeout"},
		{"timeout negative", "POST", "/v2/sandboxes", `{"timeout":-1}`, "timeout"},
		{"timeout above 24h", "POST", "/v2/sandboxes", `{"timeout":86401}`, "timeout"},
		{"timeout huge", "POST", "/v2/sandboxes", `{"timeout":99999999999999999999999}`, "timeout"},
		{"templateID number", "POST", "/v2/sandboxes", `{"templateID":5}`, "templateID"},
		{"unknown template", "POST", "/sandboxes", `{"templateID":"nosuch"}`, `templateID: template "nosuch" not found`},
		{"metadata not object", "POST", "/v2/sandboxes", `{"metadata":[1]}`, "metadata"},
		{"metadata value number", "POST", "/v2/sandboxes", `{"metadata":{"k":1}}`, "metadata.k"},
		{"envVars value bool", "POST", "/v2/sandboxes", `{"envVars":{"K":true}}`, "envVars.K"},
		{"envVars bad name", "POST", "/v2/sandboxes", `{"envVars":{"A=B":"x"}}`, "envVars"},
		{"autoPause string", "POST", "/v2/sandboxes", `{"autoPause":"yes"}`, "autoPause"},
		{"autoResume without autoPause", "POST", "/v2/sandboxes", `{"autoResume":{"enabled":true}}`, "autoResume"},
		{"autoResume.enabled string", "POST", "/v2/sandboxes", `{"autoResume":{"enabled":"x"}}`, "autoResume.enabled"},
		{"allow_internet_access string", "POST", "/v2/sandboxes", `{"allow_internet_access":"no"}`, "allow_internet_access"},
		{"network not object", "POST", "/v2/sandboxes", `{"network":true}`, "network"},
		{"network.allowPublicTraffic string", "POST", "/v2/sandboxes", `{"network":{"allowPublicTraffic":"no"}}`, "network.allowPublicTraffic"},
		{"network.denyOut domain", "POST", "/v2/sandboxes", `{"network":{"denyOut":["example.com"]}}`, "network.denyOut: invalid denied CIDR example.com"},
		{"network.egressProxy", "POST", "/v2/sandboxes", `{"network":{"egressProxy":{"address":"p:1080"}}}`, "network.egressProxy"},
		{"volumeMounts", "POST", "/v2/sandboxes", `{"volumeMounts":[{"name":"v","path":"/data"}]}`, "volumeMounts: invalid mounts"},
		{"volumeMounts wrong type", "POST", "/v2/sandboxes", `{"volumeMounts":{"a":1}}`, "volumeMounts"},
		{"runtimeClass unknown", "POST", "/v2/sandboxes", `{"runtimeClass":"kata"}`, "runtimeClass"},
		{"body not object", "POST", "/v2/sandboxes", `[1,2]`, "request body"},
		{"body not JSON", "POST", "/v2/sandboxes", `{"templateID":`, "request body"},
		{"trailing data", "POST", "/v2/sandboxes", `{} {}`, "request body"},
		{"timeout body missing field", "POST", "/sandboxes/" + id + "/timeout", `{}`, "timeout: required"},
		{"timeout body string", "POST", "/sandboxes/" + id + "/timeout", `{"timeout":"1"}`, "timeout"},
		{"refresh too long", "POST", "/sandboxes/" + id + "/refreshes", `{"duration":3601}`, "duration"},
		{"refresh negative", "POST", "/sandboxes/" + id + "/refreshes", `{"duration":-5}`, "duration"},
		{"pause memory string", "POST", "/sandboxes/" + id + "/pause", `{"memory":"no"}`, "memory"},
		{"resume timeout negative", "POST", "/sandboxes/" + id + "/resume", `{"timeout":-1}`, "timeout"},
		{"resume autoPause string", "POST", "/sandboxes/" + id + "/resume", `{"autoPause":1}`, "autoPause"},
		{"connect memory string", "POST", "/sandboxes/" + id + "/connect", `{"memory":"no"}`, "memory"},
		{"connect timeout too big", "POST", "/v2/sandboxes/" + id + "/connect", `{"timeout":90000}`, "timeout"},
		{"list limit 0", "GET", "/v2/sandboxes?limit=0", "", "limit"},
		{"list limit 101", "GET", "/v2/sandboxes?limit=101", "", "limit"},
		{"list limit text", "GET", "/v2/sandboxes?limit=ten", "", "limit"},
		{"list state", "GET", "/v2/sandboxes?state=running,dead", "", "state"},
		{"list order", "GET", "/v2/sandboxes?order=up", "", "order"},
		{"list startedAfter", "GET", "/v2/sandboxes?startedAfter=yesterday", "", "startedAfter"},
		{"list nextToken", "GET", "/v2/sandboxes?nextToken=notatoken", "", "nextToken"},
		{"list metadata", "GET", "/v2/sandboxes?metadata=novalue", "", "metadata"},
		{"v1 list metadata escape", "GET", "/sandboxes?metadata=a%3D%25zz", "", "metadata"},
		{"logs start negative", "GET", "/sandboxes/" + id + "/logs?start=-1", "", "start"},
		{"logs limit too big", "GET", "/sandboxes/" + id + "/logs?limit=10001", "", "limit"},
		{"metrics start text", "GET", "/sandboxes/" + id + "/metrics?start=now", "", "start"},
		{"metrics end negative", "GET", "/sandboxes/" + id + "/metrics?end=-1", "", "end"},
		{"metrics start after end", "GET", "/sandboxes/" + id + "/metrics?start=100&end=50", "", "start"},
	}
	creates := e.node.Calls("create")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(tt.method, tt.path, tt.body)
			if r.Status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", r.Status, r.Body)
			}
			if msg := r.errorMessage(t); !strings.HasPrefix(msg, tt.wantField) {
				t.Errorf("message %q does not start with %q", msg, tt.wantField)
			}
		})
	}
	if got := e.node.Calls("create"); got != creates {
		t.Errorf("invalid creates reached the node %d times", got-creates)
	}
	huge := `{"metadata":{"k":"` + strings.Repeat("x", 1<<20) + `"}}`
	if r := e.do("POST", "/v2/sandboxes", huge); r.Status != http.StatusRequestEntityTooLarge || !strings.Contains(r.errorMessage(t), "larger than") {
		t.Errorf("huge body: %d %s", r.Status, r.Body)
	}
}

func TestAuth(t *testing.T) {
	e := newEnv(t)
	revoked, k, err := controlplane.CreateAPIKey(context.Background(), e.db, "old")
	if err != nil {
		t.Fatal(err)
	}
	if err := controlplane.RevokeAPIKey(context.Background(), e.db, k.ID); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		header http.Header
		want   int
	}{
		{"lower-case header name", http.Header{"x-api-key": {e.key}}, 200},
		{"canonical header name", http.Header{"X-Api-Key": {e.key}}, 200},
		{"missing", nil, 401},
		{"empty", http.Header{"X-Api-Key": {""}}, 401},
		{"wrong", http.Header{"X-Api-Key": {"e2b_0000000000000000000000000000000000000000"}}, 401},
		{"prefix of the right key", http.Header{"X-Api-Key": {e.key[:20]}}, 401},
		{"revoked", http.Header{"X-Api-Key": {revoked}}, 401},
		{"bearer instead", http.Header{"Authorization": {"Bearer " + e.key}}, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// httptest keeps header names as given: canonicalise like net/http.
			h := http.Header{}
			for k, vs := range tt.header {
				for _, v := range vs {
					h.Add(k, v)
				}
			}
			for _, path := range []string{"/v2/sandboxes", "/sandboxes"} {
				r := e.doWith("GET", path, "", h)
				if r.Status != tt.want {
					t.Fatalf("GET %s: %d, want %d: %s", path, r.Status, tt.want, r.Body)
				}
				if tt.want == 401 && r.errorMessage(t) == "" {
					t.Errorf("401 without message")
				}
			}
		})
	}
	// Unauthenticated routes.
	for _, path := range []string{"/health", "/openapi.yaml"} {
		if r := e.doWith("GET", path, "", nil); r.Status != 200 {
			t.Errorf("GET %s without key: %d", path, r.Status)
		}
	}
}

func TestUnknownRoutesAndPanics(t *testing.T) {
	e := newEnv(t)
	for _, tt := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/nope", 404},
		{"PUT", "/sandboxes", 405},
		{"PATCH", "/v2/sandboxes", 405},
	} {
		r := e.do(tt.method, tt.path, "")
		if r.Status != tt.want {
			t.Errorf("%s %s: %d, want %d", tt.method, tt.path, r.Status, tt.want)
		}
		r.errorMessage(t)
	}

	// A panicking service becomes a JSON 500, and the server lives on.
	h := NewHandler(panicService{}, allowAll{}, Options{Logger: quiet()})
	for range 2 {
		req := httptest.NewRequest("GET", "/sandboxes/abc", nil)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		res := &response{Status: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
		if res.Status != 500 || res.errorMessage(t) != "internal error" {
			t.Errorf("panic answered %d %s", res.Status, res.Body)
		}
	}
}

// panicService panics on every call (its embedded Service is nil).
type panicService struct{ Service }

// allowAll accepts every request.
type allowAll struct{}

func (allowAll) Authenticate(context.Context, string) (controlplane.Principal, error) {
	return controlplane.Principal{TeamID: store.DefaultTeamID}, nil
}
