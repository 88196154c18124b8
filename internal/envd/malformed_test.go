package envd

import (
	"strings"
	"testing"
)

func TestMalformedRequestsGetClientErrors(t *testing.T) {
	_, srv := newServer(t)
	connectJSON := []string{"Content-Type", "application/json", "Connect-Protocol-Version", "1"}
	stream := []string{"Content-Type", "application/connect+json", "Connect-Protocol-Version", "1"}
	cases := []struct {
		name, method, path, body string
		hdr                      []string
		status                   int
	}{
		{"rpc garbage json", "POST", "/process.Process/SendInput", "{{{", connectJSON, 400},
		{"rpc wrong field type", "POST", "/filesystem.Filesystem/Stat", `{"path": 5}`, connectJSON, 400},
		{"rpc unknown method", "POST", "/process.Process/Nope", "{}", connectJSON, 404},
		{"rpc wrong content type", "POST", "/process.Process/List", "{}", []string{"Content-Type", "text/plain"}, 415},
		{"stream with a truncated frame", "POST", "/process.Process/Start", "\x00\x00\x00\x10{", stream, 200},
		{"stream with garbage", "POST", "/filesystem.Filesystem/WatchDir", "hello", stream, 200},
		{"huge depth", "POST", "/filesystem.Filesystem/ListDir", `{"path":"/proc/self","depth":4294967295}`, connectJSON, 200},
		{"nul in a path", "POST", "/filesystem.Filesystem/Stat", `{"path":"/tmp/a\u0000b"}`, connectJSON, 400},
		{"long path", "POST", "/filesystem.Filesystem/Stat", `{"path":"/` + strings.Repeat("a", 5000) + `"}`, connectJSON, 400},
		{"files without query", "GET", "/files", "", nil, 400},
		{"files bad query", "GET", "/files?path=%zz", "", nil, 400},
		{"files put", "PUT", "/files", "", nil, 405},
		{"unknown route", "GET", "/nope", "", nil, 404},
		{"init array", "POST", "/init", "[1,2]", nil, 400},
		{"init wrong types", "POST", "/init", `{"envVars":"x"}`, nil, 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := call(t, tc.method, srv.URL+tc.path, tc.body, tc.hdr...)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, body)
			}
			if tc.status == 200 && strings.HasPrefix(tc.name, "stream") && !strings.Contains(body, "error") {
				t.Fatalf("stream without an error: %q", body)
			}
		})
	}
	if status, _ := call(t, "GET", srv.URL+"/health", ""); status != 204 {
		t.Fatalf("the daemon stopped answering: %d", status)
	}
}
