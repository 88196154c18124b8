package api

import (
	"strings"
	"testing"
)

// fuzzRoutes are the routes whose bodies and queries the API decodes; SBX is
// replaced by a sandbox of the caller's.
var fuzzRoutes = []struct{ method, path string }{
	{"POST", "/sandboxes"}, {"POST", "/v2/sandboxes"}, {"GET", "/v2/sandboxes?"},
	{"POST", "/sandboxes/SBX/timeout"}, {"POST", "/sandboxes/SBX/refreshes"},
	{"POST", "/sandboxes/SBX/pause"}, {"POST", "/sandboxes/SBX/resume"},
	{"POST", "/sandboxes/SBX/connect"}, {"GET", "/sandboxes/SBX/logs?"},
	{"GET", "/sandboxes/SBX/metrics?"}, {"POST", "/templates"}, {"POST", "/api-keys"},
	{"PATCH", "/api-keys/00000000-0000-0000-0000-000000000000"},
	{"GET", "/v2/sandboxes/SBX/logs?"}, {"GET", "/sandboxes/metrics?"},
	{"POST", "/v3/templates"}, {"POST", "/v2/templates/fuzz/builds/00000000-0000-4000-8000-000000000000"},
	{"POST", "/templates/tags"}, {"DELETE", "/templates/tags"},
}

// FuzzRequestDecoding sends arbitrary JSON bodies and query strings to every route
// that decodes one: the API must answer every one with a response that conforms to
// openapi.yaml and never a 5xx of its own (the harness fails on any 5xx but 503)
// or a panic. Requests themselves may be ones the server tolerates beyond the spec.
func FuzzRequestDecoding(f *testing.F) {
	seeds := []struct {
		route       uint8
		query, body string
	}{
		{0, "", `{"templateID":"base","timeout":30,"metadata":{"a":"b"},"envVars":{"K":"V"}}`},
		{1, "", `{"templateID":"base","autoPause":true,"autoResume":{"enabled":true},"network":{"allowPublicTraffic":false}}`},
		{1, "", `{"templateID":"base","timeout":-1}`},
		{1, "", `{"templateID":7,"metadata":[],"envVars":{"A":1}}`},
		{1, "", `{"templateID":"base","runtimeClass":"runc","allow_internet_access":"yes"}`},
		{2, "state=running,paused&limit=5&metadata=a%3Db&nextToken=zz", ""},
		{2, "limit=-1&startedAfter=yesterday&order=sideways", ""},
		{3, "", `{"timeout":99999999999999999999}`},
		{4, "", `{"duration":3601}`},
		{5, "", `{"memory":false}`},
		{6, "", `{"timeout":10,"autoPause":"x"}`},
		{7, "", `{"timeout":1e400}`},
		{8, "start=-5&limit=abc", ""},
		{9, "start=1&end=0", ""},
		{10, "", `{"name":"../x","dockerfile":"FROM base\nRUN true","context":"!!!"}`},
		{11, "", `{"name":""}`},
		{12, "", `{"name":null}`},
		{13, "cursor=1&direction=forward&level=warn&search=x&start=5&end=2&limit=1000", ""},
		{13, "cursor=99999999999999999999&limit=-3&level=WARN", ""},
		{14, "sandbox_ids=SBX,,x&sandbox_ids=y", ""},
		{15, "", `{"name":"ns/app:v1","tags":["a","B"],"cpuCount":1,"minFreeDiskMb":-1}`},
		{16, "", `{"fromTemplate":"base","fromImageRegistry":{"type":"gcp"},"steps":[{"type":"COPY","args":["a"],"filesHash":"x"}]}`},
		{17, "", `{"target":"app:","tags":[""]}`},
		{18, "", `{"name":"app","tags":["default"]}`},
		{0, "", `{"templateID":"base"` + strings.Repeat(" ", 10) + `}{}`},
		{0, "", "\xff\xfe"},
	}
	for _, s := range seeds {
		f.Add(s.route, s.query, s.body)
	}
	e := newEnv(f)
	e.lenientRequests = true
	var created sandboxJSON
	e.do("POST", "/v2/sandboxes", `{"timeout":3600}`).decode(f, &created)
	sbx := created.SandboxID
	f.Fuzz(func(t *testing.T, route uint8, query, body string) {
		e.t = t
		r := fuzzRoutes[int(route)%len(fuzzRoutes)]
		path := strings.ReplaceAll(r.path, "SBX", sbx)
		if strings.HasSuffix(path, "?") {
			path += strings.Map(func(c rune) rune {
				if c <= ' ' || c == '#' || c > '~' {
					return -1
				}
				return c
			}, query)
		}
		res := e.do(r.method, path, body)
		if res.Status >= 200 && res.Status < 300 && r.method == "POST" && strings.HasPrefix(r.path, "/sandboxes/SBX/") {
			// Keep the shared sandbox usable for the next input.
			e.do("POST", "/sandboxes/"+sbx+"/resume", "{}")
		}
	})
}
