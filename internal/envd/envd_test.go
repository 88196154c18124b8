package envd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"lelantos.dev/lelantos/internal/envd/reaper"
	fspb "lelantos.dev/lelantos/internal/gen/envd/filesystem"
	"lelantos.dev/lelantos/internal/gen/envd/filesystem/filesystemconnect"
	pb "lelantos.dev/lelantos/internal/gen/envd/process"
	"lelantos.dev/lelantos/internal/gen/envd/process/processconnect"
)

// testReaper is the test binary's only reaper (two would steal children).
var testReaper *reaper.Reaper

func TestMain(m *testing.M) {
	if spec := os.Getenv(swapperEnv); spec != "" {
		os.Exit(runSwapper(spec))
	}
	testReaper = reaper.New()
	ctx, cancel := context.WithCancel(context.Background())
	go testReaper.Run(ctx)
	code := m.Run()
	cancel()
	os.Exit(code)
}

// newServer serves a fresh Daemon.
func newServer(t *testing.T) (*Daemon, *httptest.Server) {
	t.Helper()
	d := New(Options{Spawner: testReaper})
	srv := httptest.NewServer(d.Handler())
	t.Cleanup(func() {
		_ = d.Close(context.Background())
		srv.Close()
	})
	return d, srv
}

// call sends a plain request and returns status and body.
func call(t *testing.T, method, url, body string, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func TestInitAndTokenChecks(t *testing.T) {
	_, srv := newServer(t)
	u := srv.URL
	rpc := func(token string) (int, string) {
		hdr := []string{"Content-Type", "application/json", "Connect-Protocol-Version", "1"}
		if token != "" {
			hdr = append(hdr, "X-Access-Token", token)
		}
		return call(t, "POST", u+"/process.Process/List", "{}", hdr...)
	}
	steps := []struct {
		name   string
		do     func() (int, string)
		status int
		body   string
	}{
		{"health before init", func() (int, string) { return call(t, "GET", u+"/health", "") }, 204, ""},
		{"rpc open without a token", func() (int, string) { return rpc("") }, 200, "{}"},
		{"envs empty", func() (int, string) { return call(t, "GET", u+"/envs", "") }, 200, "{}\n"},
		{"bad init body", func() (int, string) { return call(t, "POST", u+"/init", "{not json") }, 400, ""},
		{"bad init timestamp", func() (int, string) { return call(t, "POST", u+"/init", `{"timestamp":"yesterday"}`) }, 400, ""},
		{"init sets token and env, unknown fields ignored", func() (int, string) {
			return call(t, "POST", u+"/init", `{"envVars":{"A":"1"},"accessToken":"tok","defaultUser":"root","timestamp":"2030-01-01T00:00:00Z","hyperloopIP":"x"}`)
		}, 204, ""},
		{"health stays open", func() (int, string) { return call(t, "GET", u+"/health", "") }, 204, ""},
		{"rpc without token", func() (int, string) { return rpc("") }, 401, ""},
		{"rpc with wrong token", func() (int, string) { return rpc("tok2") }, 401, ""},
		{"rpc with token", func() (int, string) { return rpc("tok") }, 200, "{}"},
		{"envs needs the token", func() (int, string) { return call(t, "GET", u+"/envs", "") }, 401, ""},
		{"metrics need the token", func() (int, string) { return call(t, "GET", u+"/metrics", "") }, 401, ""},
		{"envs with token", func() (int, string) { return call(t, "GET", u+"/envs", "", "X-Access-Token", "tok") }, 200, "{\"A\":\"1\"}\n"},
		{"files without token or signature", func() (int, string) { return call(t, "GET", u+"/files?path=/etc/hostname", "") }, 401, ""},
		{"files with token", func() (int, string) {
			return call(t, "GET", u+"/files?path=/etc/hostname", "", "X-Access-Token", "tok")
		}, 200, ""},
		{"re-init may not change the token blindly", func() (int, string) {
			return call(t, "POST", u+"/init", `{"accessToken":"evil"}`)
		}, 401, ""},
		{"re-init with the same token", func() (int, string) {
			return call(t, "POST", u+"/init", `{"accessToken":"tok","envVars":{"B":"2"},"timestamp":"2030-01-01T00:00:01Z"}`)
		}, 204, ""},
		{"an older init is ignored", func() (int, string) {
			return call(t, "POST", u+"/init", `{"envVars":{"A":"old"},"timestamp":"2029-01-01T00:00:00Z"}`, "X-Access-Token", "tok")
		}, 204, ""},
		{"rotate the token presenting the old one", func() (int, string) {
			return call(t, "POST", u+"/init", `{"accessToken":"tok2"}`, "X-Access-Token", "tok")
		}, 204, ""},
		{"envs merged", func() (int, string) { return call(t, "GET", u+"/envs", "", "X-Access-Token", "tok2") }, 200, "{\"A\":\"1\",\"B\":\"2\"}\n"},
		{"old token is gone", func() (int, string) { return rpc("tok") }, 401, ""},
		{"cors preflight needs no token", func() (int, string) {
			return call(t, "OPTIONS", u+"/process.Process/List", "", "Origin", "http://x", "Access-Control-Request-Method", "POST")
		}, 204, ""},
	}
	for _, s := range steps {
		status, body := s.do()
		if status != s.status || (s.body != "" && body != s.body) {
			t.Fatalf("%s: %d %q, want %d %q", s.name, status, body, s.status, s.body)
		}
		if status == 401 {
			var e struct {
				Code int `json:"code"`
			}
			if json.Unmarshal([]byte(body), &e) != nil || e.Code != 401 {
				t.Fatalf("%s: 401 body %q", s.name, body)
			}
		}
	}
}

func TestMetrics(t *testing.T) {
	_, srv := newServer(t)
	status, body := call(t, "GET", srv.URL+"/metrics", "")
	if status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	var m map[string]float64
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"ts", "cpu_count", "cpu_used_pct", "mem_total", "mem_used", "mem_cache", "disk_used", "disk_total"} {
		if _, ok := m[k]; !ok {
			t.Fatalf("metrics lack %s: %s", k, body)
		}
	}
	if m["mem_total"] <= m["mem_used"] || m["disk_total"] < m["disk_used"] || m["cpu_count"] < 1 || m["ts"] < 1e9 {
		t.Fatalf("implausible metrics %s", body)
	}
}

func TestServicesThroughTheDaemon(t *testing.T) {
	d, srv := newServer(t)
	tok := "daemon-token"
	init := fmt.Sprintf(`{"accessToken":%q,"envVars":{"FROM_INIT":"yes"},"defaultWorkdir":"/tmp"}`, tok)
	if status, body := call(t, "POST", srv.URL+"/init", init); status != 204 {
		t.Fatalf("init: %d %s", status, body)
	}
	if v, ok := d.Settings().Token(); !ok || v != tok {
		t.Fatalf("token %q", v)
	}
	withToken := connect.WithInterceptors(connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set("X-Access-Token", tok)
			return next(ctx, req)
		}
	}))
	fs := filesystemconnect.NewFilesystemClient(srv.Client(), srv.URL, connect.WithProtoJSON(), withToken)
	if _, err := fs.MakeDir(context.Background(), connect.NewRequest(&fspb.MakeDirRequest{Path: t.TempDir() + "/made"})); err != nil {
		t.Fatal(err)
	}
	procs := processconnect.NewProcessClient(srv.Client(), srv.URL)
	req := connect.NewRequest(&pb.StartRequest{Process: &pb.ProcessConfig{Cmd: "/bin/bash", Args: []string{"-c", "echo $FROM_INIT; pwd"}}})
	req.Header().Set("X-Access-Token", tok)
	stream, err := procs.Start(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	var out string
	for stream.Receive() {
		out += string(stream.Msg().GetEvent().GetData().GetStdout())
	}
	if stream.Err() != nil || out != "yes\n/tmp\n" {
		t.Fatalf("out %q err %v", out, stream.Err())
	}
	bad := connect.NewRequest(&pb.StartRequest{Process: &pb.ProcessConfig{Cmd: "true"}})
	s2, err := procs.Start(context.Background(), bad)
	if err == nil {
		for s2.Receive() {
		}
		err = s2.Err()
	}
	if connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("no token: %v", err)
	}
}
