package api

import (
	"errors"
	"net/http"
	"sort"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"lelantos.dev/lelantos/internal/controlplane/controlplanetest"
)

// TestSpecConformance calls every route with its main outcomes and checks
// each request and response against openapi.yaml; at the end every
// operation of the document must have been called successfully, so the
// handler and the document cannot drift apart unnoticed.
func TestSpecConformance(t *testing.T) {
	e := newEnv(t)
	want := func(r *response, status int) *response {
		t.Helper()
		if r.Status != status {
			t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
		}
		return r
	}

	want(e.doWith("GET", "/health", "", nil), 200)
	spec := want(e.doWith("GET", "/openapi.yaml", "", nil), 200)
	if !strings.Contains(string(spec.Body), "openapi: 3.0") {
		t.Errorf("GET /openapi.yaml did not serve the document")
	}

	// Create, both routes, minimal and full bodies.
	var a, b sandboxJSON
	want(e.do("POST", "/sandboxes", `{"templateID":"base"}`), 201).decode(t, &a)
	want(e.do("POST", "/v2/sandboxes", `{"templateID":"python","timeout":600,"metadata":{"user":"ann","app":"x y"},
		"envVars":{"A":"1"},"autoPause":true,"autoResume":{"enabled":true},"secure":true,
		"allow_internet_access":false,"network":{"allowPublicTraffic":false,"allowOut":["1.1.1.1"]},
		"mcp":{"x":1},"iam":{"tokens":{}},"volumeMounts":[],"runtimeClass":"runc","unknownField":[1,2]}`), 201).decode(t, &b)
	if a.Domain == nil || *a.Domain != "lelantos.test" || a.TrafficAccessToken != nil || a.WorkloadType != "compute" ||
		a.RuntimeClass != "gvisor" || a.EnvdVersion != "0.6.4" || a.ClientID != "lelantos" || a.EnvdAccessToken == "" {
		t.Errorf("minimal create answered %+v", a)
	}
	if b.TemplateID != "py" || b.Alias != "python" || b.TrafficAccessToken == nil || b.RuntimeClass != "runc" || b.EnvdVersion != "0.6.5" {
		t.Errorf("full create answered %+v", b)
	}
	want(e.do("POST", "/v2/sandboxes", `{"templateID":"nope"}`), 400)
	want(e.do("POST", "/sandboxes", `{"templateID":"base","metadata":"`+strings.Repeat("x", 2<<20)+`"}`), 413)

	// Listings.
	var listed []listedJSON
	want(e.do("GET", "/sandboxes?metadata=user%3Dann", ""), 200).decode(t, &listed)
	if len(listed) != 1 || listed[0].SandboxID != b.SandboxID {
		t.Errorf("v1 list with metadata: %+v", listed)
	}
	page := want(e.do("GET", "/v2/sandboxes?state=running,paused&limit=1", ""), 200)
	next := page.Header.Get("X-Next-Token")
	if next == "" {
		t.Fatalf("first page of two has no X-Next-Token")
	}
	last := want(e.do("GET", "/v2/sandboxes?state=running&limit=1&order=desc&nextToken="+next, ""), 200)
	if last.Header.Get("X-Next-Token") != "" {
		t.Errorf("last page has X-Next-Token")
	}
	want(e.do("GET", "/v2/sandboxes?startedAfter=2020-01-01T00:00:00.000Z&template=python&order=asc", ""), 200)
	want(e.do("GET", "/v2/sandboxes?limit=0", ""), 400)

	// Detail.
	var d detailJSON
	want(e.do("GET", "/sandboxes/"+b.SandboxID, ""), 200).decode(t, &d)
	if d.State != "running" || d.Lifecycle.OnTimeout != "pause" || !d.Lifecycle.AutoResume || d.AllowInternetAccess == nil ||
		*d.AllowInternetAccess || d.Metadata["app"] != "x y" || d.VolumeMounts == nil || d.CPUCount != 1 || d.MemoryMB != 256 {
		t.Errorf("detail %+v", d)
	}
	want(e.do("GET", "/sandboxes/doesnotexist", ""), 404)

	// End time.
	want(e.do("POST", "/sandboxes/"+a.SandboxID+"/timeout", `{"timeout":120}`), 204)
	want(e.do("POST", "/sandboxes/"+a.SandboxID+"/timeout", `{"timeout":-1}`), 400)
	want(e.do("POST", "/sandboxes/doesnotexist/timeout", `{"timeout":1}`), 404)
	want(e.do("POST", "/sandboxes/"+a.SandboxID+"/refreshes", `{}`), 204)
	want(e.do("POST", "/sandboxes/"+a.SandboxID+"/refreshes", `{"duration":3600}`), 204)
	want(e.do("POST", "/sandboxes/"+a.SandboxID+"/refreshes", `{"duration":3601}`), 400)
	want(e.do("POST", "/sandboxes/doesnotexist/refreshes", ``), 404)

	// Pause, resume, connect.
	want(e.do("POST", "/sandboxes/"+a.SandboxID+"/pause", ``), 204)
	want(e.do("POST", "/sandboxes/"+a.SandboxID+"/pause", `{"memory":false}`), 409)
	want(e.do("POST", "/sandboxes/doesnotexist/pause", `{}`), 404)
	want(e.do("POST", "/sandboxes/"+a.SandboxID+"/resume", `{"timeout":60,"autoPause":false}`), 201)
	want(e.do("POST", "/sandboxes/"+a.SandboxID+"/resume", `{}`), 409)
	want(e.do("POST", "/sandboxes/doesnotexist/resume", `{}`), 404)
	want(e.do("POST", "/sandboxes/"+a.SandboxID+"/resume", `{"memory":false}`), 409)
	want(e.do("POST", "/sandboxes/"+a.SandboxID+"/connect", `{"timeout":60}`), 200)
	want(e.do("POST", "/v2/sandboxes/"+a.SandboxID+"/connect", `{}`), 200)
	want(e.do("POST", "/sandboxes/"+a.SandboxID+"/pause", `{}`), 204)
	want(e.do("POST", "/v2/sandboxes/"+a.SandboxID+"/connect", `{"timeout":60}`), 201)
	want(e.do("POST", "/sandboxes/"+a.SandboxID+"/pause", `{}`), 204)
	want(e.do("POST", "/sandboxes/"+a.SandboxID+"/connect", `{"timeout":60}`), 201)
	want(e.do("POST", "/sandboxes/doesnotexist/connect", `{"timeout":60}`), 404)
	want(e.do("POST", "/v2/sandboxes/doesnotexist/connect", `{}`), 404)
	e.node.Fail(controlplanetest.OpPause, connect.NewError(connect.CodeFailedPrecondition, errors.New("runc cannot checkpoint")))
	want(e.do("POST", "/sandboxes/"+a.SandboxID+"/pause", `{}`), 409)
	e.node.Fail(controlplanetest.OpPause, connect.NewError(connect.CodeUnavailable, errors.New("node down")))
	want(e.do("POST", "/sandboxes/"+a.SandboxID+"/pause", `{}`), 503)
	e.node.Fail(controlplanetest.OpPause, nil)
	want(e.do("POST", "/sandboxes/"+a.SandboxID+"/pause", `{}`), 204)
	e.node.Fail(controlplanetest.OpResume, connect.NewError(connect.CodeResourceExhausted, errors.New("no memory left")))
	want(e.do("POST", "/sandboxes/"+a.SandboxID+"/resume", `{}`), 503)
	want(e.do("POST", "/sandboxes/"+a.SandboxID+"/connect", `{}`), 503)
	want(e.do("POST", "/v2/sandboxes/"+a.SandboxID+"/connect", `{}`), 503)
	e.node.Fail(controlplanetest.OpResume, nil)
	want(e.do("POST", "/sandboxes/"+a.SandboxID+"/connect", `{}`), 201)

	// Logs and metrics.
	var logs logsJSON
	want(e.do("GET", "/sandboxes/"+a.SandboxID+"/logs", ""), 200).decode(t, &logs)
	if len(logs.Logs) == 0 || len(logs.LogEntries) != len(logs.Logs) {
		t.Errorf("logs %+v", logs)
	}
	want(e.do("GET", "/sandboxes/"+a.SandboxID+"/logs?start=0&limit=2", ""), 200).decode(t, &logs)
	if len(logs.Logs) != 2 {
		t.Errorf("logs with limit 2: %d lines", len(logs.Logs))
	}
	want(e.do("GET", "/sandboxes/"+a.SandboxID+"/logs?limit=x", ""), 400)
	want(e.do("GET", "/sandboxes/doesnotexist/logs", ""), 404)
	var metrics []metricJSON
	want(e.do("GET", "/sandboxes/"+a.SandboxID+"/metrics", ""), 200).decode(t, &metrics)
	if len(metrics) != 1 || metrics[0].TimestampUnix != metrics[0].Timestamp.Unix() || metrics[0].MemTotal == 0 {
		t.Errorf("metrics of a running sandbox: %+v, want one sample", metrics)
	}
	want(e.do("GET", "/sandboxes/"+a.SandboxID+"/metrics?start=10&end=5", ""), 400)
	want(e.do("GET", "/sandboxes/doesnotexist/metrics", ""), 404)
	exerciseObserve(t, e, want, a.SandboxID)

	// Kill.
	want(e.do("DELETE", "/sandboxes/"+a.SandboxID, ""), 204)
	want(e.do("DELETE", "/sandboxes/"+a.SandboxID, ""), 404)
	want(e.do("GET", "/sandboxes/"+a.SandboxID, ""), 404)
	e.node.Fail(controlplanetest.OpKill, connect.NewError(connect.CodeUnavailable, errors.New("node down")))
	want(e.do("DELETE", "/sandboxes/"+b.SandboxID, ""), 503)
	e.node.Fail(controlplanetest.OpKill, nil)

	// Node failures on create: kinds map to statuses, messages name the operation.
	e.allow5xx.Store(true)
	for code, status := range map[connect.Code]int{
		connect.CodeInvalidArgument: 400, connect.CodeNotFound: 404, connect.CodeFailedPrecondition: 409,
		connect.CodeAlreadyExists: 409, connect.CodeAborted: 409, connect.CodeResourceExhausted: 503,
		connect.CodeUnavailable: 503, connect.CodeDeadlineExceeded: 503, connect.CodeInternal: 500,
	} {
		e.node.Fail(controlplanetest.OpCreate, connect.NewError(code, errors.New("node full: engine says no")))
		r := want(e.do("POST", "/sandboxes", `{}`), status)
		if msg := r.errorMessage(t); !strings.Contains(msg, "create sandbox") || !strings.Contains(msg, "node full: engine says no") {
			t.Errorf("%v: message %q", code, msg)
		}
	}
	e.node.Fail(controlplanetest.OpCreate, nil)
	e.allow5xx.Store(false)

	// Templates: list, build, status and logs, get, delete.
	exerciseTemplates(t, e, want)

	// Teams and API keys.
	exerciseAccounts(t, e, want)

	// Volumes and their content.
	exerciseVolumes(t, e, want)

	// Forks, snapshots and the pause variants.
	exerciseForks(t, e, want)

	// Egress rules of a running sandbox.
	exerciseNetwork(t, e, want)

	// The nodes, for the operator.
	exerciseNodes(t, e, want)

	// Every operation of the document was called with a 2xx answer.
	var missing []string
	for path, item := range e.doc.Paths.Map() {
		for method, op := range item.Operations() {
			ok := false
			for code := range op.Responses.Map() {
				if strings.HasPrefix(code, "2") && e.covered[method+" "+path+" "+http.StatusText(atoi(code))] {
					ok = true
				}
			}
			if !ok {
				missing = append(missing, method+" "+path)
			}
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("operations never answered with success: %v", missing)
	}
}

// atoi parses a status code of the document.
func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}
