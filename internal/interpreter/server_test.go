package interpreter_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/envd"
	"lelantos.dev/lelantos/internal/envd/reaper"
	"lelantos.dev/lelantos/internal/interpreter"
)

// harness is an interpreter server with bash contexts in front of a real envd
// daemon whose access token is "tok" and whose env holds SANDBOX=create.
type harness struct {
	url string
	m   *interpreter.Manager
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	rp := reaper.New()
	ctx, cancel := context.WithCancel(context.Background())
	go rp.Run(ctx)
	d := envd.New(envd.Options{Spawner: rp})
	es := httptest.NewServer(d.Handler())
	t.Cleanup(func() {
		_ = d.Close(context.Background())
		es.Close()
		cancel()
	})
	res, err := http.Post(es.URL+"/init", "application/json", strings.NewReader(`{"accessToken":"tok","envVars":{"SANDBOX":"create"}}`))
	if err != nil || res.StatusCode != http.StatusNoContent {
		t.Fatalf("envd init: %v %v", err, res)
	}
	m := interpreter.NewManager(interpreter.Options{KernelDirs: kernelDirs(t), RuntimeDir: t.TempDir(), DefaultCwd: t.TempDir(),
		KernelEnv: []string{"PATH=/usr/bin:/bin", "HOME=/tmp"}})
	t.Cleanup(m.Close)
	srv := httptest.NewServer(interpreter.NewServer(m, &interpreter.EnvdClient{URL: es.URL}, nil).Handler())
	t.Cleanup(srv.Close)
	return &harness{url: srv.URL, m: m}
}

// do sends a request (token "" sends none) and returns status and body.
func (h *harness) do(t *testing.T, ctx context.Context, method, path, body, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, h.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("X-Access-Token", token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// execute runs code and returns the stream's lines, checking their framing.
func (h *harness) execute(t *testing.T, body string) []map[string]any {
	t.Helper()
	status, out := h.do(t, context.Background(), "POST", "/execute", body, "tok")
	if status != http.StatusOK {
		t.Fatalf("execute %s: %d %s", body, status, out)
	}
	if !strings.HasSuffix(out, "\n") || strings.Contains(out, "\n\n") {
		t.Fatalf("the stream is not one JSON object per line: %q", out)
	}
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var v map[string]any
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, v)
	}
	if len(lines) == 0 || lines[len(lines)-1]["type"] != "end_of_execution" {
		t.Fatalf("the last line is not end_of_execution: %v", lines)
	}
	return lines
}

func body(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestRequestErrors(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	cases := []struct {
		name, method, path, body, token string
		status                          int
		mentions                        string
	}{
		{"health", "GET", "/health", "", "", 200, `"OK"`},
		{"no code", "POST", "/execute", `{"language":"bash"}`, "tok", 422, `"code"`},
		{"not JSON", "POST", "/execute", `{"code":`, "tok", 422, "json_invalid"},
		{"context and language", "POST", "/execute", `{"code":"1","context_id":"x","language":"bash"}`, "tok", 400, "Only one of context_id or language can be provided"},
		{"unknown context", "POST", "/execute", `{"code":"1","context_id":"nope"}`, "tok", 404, "Context nope not found"},
		{"unknown language", "POST", "/execute", `{"code":"1","language":"cobol"}`, "tok", 404, "cobol"},
		{"a bad env var name", "POST", "/execute", `{"code":"1","language":"bash","env_vars":{"A B":"x"}}`, "tok", 400, "env_vars"},
		{"no token", "POST", "/execute", `{"code":"echo hi","language":"bash"}`, "", 401, "X-Access-Token"},
		{"wrong token", "POST", "/execute", `{"code":"echo hi","language":"bash"}`, "tik", 401, "X-Access-Token"},
		{"context of an unknown language", "POST", "/contexts", `{"language":"cobol"}`, "", 404, "cobol"},
		{"context in a missing directory", "POST", "/contexts", `{"language":"bash","cwd":"/no/such/dir"}`, "", 400, "cwd"},
		{"remove an unknown context", "DELETE", "/contexts/nope", "", "", 404, "Context nope not found"},
		{"restart an unknown context", "POST", "/contexts/nope/restart", "", "", 404, "Context nope not found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, out := h.do(t, ctx, c.method, c.path, c.body, c.token)
			if status != c.status || !strings.Contains(out, c.mentions) {
				t.Fatalf("%d %q, want %d mentioning %q", status, out, c.status, c.mentions)
			}
		})
	}
}

func TestExecuteStreamAndEnvVars(t *testing.T) {
	h := newHarness(t)
	lines := h.execute(t, body(map[string]any{"code": "echo one; echo two >&2", "language": "bash"}))
	types := []string{}
	for _, l := range lines {
		types = append(types, l["type"].(string))
	}
	if got := strings.Join(types, ","); got != "number_of_executions,stdout,stderr,end_of_execution" && got != "number_of_executions,stderr,stdout,end_of_execution" {
		t.Fatalf("line types %s", got)
	}
	cases := []struct {
		name, code string
		env        map[string]string
		stdout     string
	}{
		{"the sandbox's env from envd", "echo $SANDBOX", nil, "create\n"},
		{"a run's env", "echo $FOO", map[string]string{"FOO": "bar"}, "bar\n"},
		{"gone after the run", "echo ${FOO:-unset}", nil, "unset\n"},
		{"an override of the sandbox's env", "echo $SANDBOX", map[string]string{"SANDBOX": "run"}, "run\n"},
		{"the sandbox's value is back", "echo $SANDBOX", nil, "create\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			lines := h.execute(t, body(map[string]any{"code": c.code, "language": "bash", "env_vars": c.env}))
			var out string
			for _, l := range lines {
				if l["type"] == "stdout" {
					out += l["text"].(string)
				}
			}
			if out != c.stdout {
				t.Fatalf("stdout %q, want %q (%v)", out, c.stdout, lines)
			}
		})
	}
	errLines := h.execute(t, body(map[string]any{"code": "exit_status_test() { return 3; }; exit_status_test", "language": "bash"}))
	var errs int
	for _, l := range errLines {
		if l["type"] == "error" {
			errs++
		}
	}
	if errs != 1 {
		t.Fatalf("%d error lines for a failing cell, want 1: %v", errs, errLines)
	}
}

// TestWarmUpLeavesNothing: a warmed-up context's first execution is its
// first, counted as 1, and sees no variable the warm-up set.
func TestWarmUpLeavesNothing(t *testing.T) {
	h := newHarness(t)
	c, err := h.m.Default(context.Background(), "bash")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.m.WarmUp(context.Background(), c); err != nil {
		t.Fatalf("warm up: %v", err)
	}
	lines := h.execute(t, body(map[string]any{"code": "echo ${LELANTOS_WARM_UP:-unset}", "language": "bash"}))
	var out string
	count := -1.0
	for _, l := range lines {
		switch l["type"] {
		case "stdout":
			out += l["text"].(string)
		case "number_of_executions":
			count = l["execution_count"].(float64)
		}
	}
	if out != "unset\n" || count != 1 {
		t.Fatalf("after a warm-up: stdout %q and execution count %v, want \"unset\\n\" and 1 (%v)", out, count, lines)
	}
}

// contextJSON is a context as the API shows it.
type contextJSON struct {
	ID, Language, Cwd string
}

func TestContexts(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	var made []contextJSON
	for _, cwd := range []string{"/tmp", "/"} {
		status, out := h.do(t, ctx, "POST", "/contexts", body(map[string]string{"language": "bash", "cwd": cwd}), "")
		var c contextJSON
		if status != 200 || json.Unmarshal([]byte(out), &c) != nil || c.Language != "bash" || c.Cwd != cwd || c.ID == "" {
			t.Fatalf("create: %d %s", status, out)
		}
		made = append(made, c)
	}
	run := func(id, code string) string {
		var out string
		for _, l := range h.execute(t, body(map[string]string{"code": code, "context_id": id})) {
			if l["type"] == "stdout" {
				out += l["text"].(string)
			}
		}
		return out
	}
	if got := run(made[0].ID, "V=first; pwd"); got != "/tmp\n" {
		t.Fatalf("first context: %q", got)
	}
	if got := run(made[1].ID, "echo ${V:-none}; pwd"); got != "none\n/\n" {
		t.Fatalf("second context shares state: %q", got)
	}
	_, out := h.do(t, ctx, "GET", "/contexts", "", "")
	var listed []contextJSON
	if err := json.Unmarshal([]byte(out), &listed); err != nil || len(listed) != 2 || listed[0].ID != made[0].ID || listed[1].ID != made[1].ID {
		t.Fatalf("list %s, want both in creation order", out)
	}
	if status, out := h.do(t, ctx, "POST", "/contexts/"+made[0].ID+"/restart", "", ""); status != 200 || strings.TrimSpace(out) != "null" {
		t.Fatalf("restart: %d %s", status, out)
	}
	if got := run(made[0].ID, "echo ${V:-gone}"); got != "gone\n" {
		t.Fatalf("state after restart: %q", got)
	}
	if status, _ := h.do(t, ctx, "DELETE", "/contexts/"+made[1].ID, "", ""); status != 200 {
		t.Fatalf("remove: %d", status)
	}
	if status, _ := h.do(t, ctx, "POST", "/execute", body(map[string]string{"code": "1", "context_id": made[1].ID}), "tok"); status != 404 {
		t.Fatalf("execute in a removed context: %d, want 404", status)
	}
}

func TestDisconnectInterruptsAndKeepalives(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), 800*time.Millisecond)
	defer cancel()
	h.do(t, ctx, "POST", "/execute", body(map[string]string{"code": "sleep 60", "language": "bash"}), "tok")
	start := time.Now()
	lines := h.execute(t, body(map[string]string{"code": "echo next", "language": "bash"}))
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the run after a client gave up took %s", d)
	}
	if lines[1]["text"] != "next\n" {
		t.Fatalf("after the disconnect: %v", lines)
	}
	// A silent cell longer than the keepalive interval.
	lines = h.execute(t, body(map[string]string{"code": "sleep 6; echo done", "language": "bash"}))
	var kinds bytes.Buffer
	for _, l := range lines {
		kinds.WriteString(l["type"].(string) + " ")
	}
	if !strings.Contains(kinds.String(), "keepalive") {
		t.Fatalf("no keepalive in a 6 s silent cell: %s", kinds.String())
	}
}

func TestKernelDeathIsReportedAndRestarted(t *testing.T) {
	h := newHarness(t)
	lines := h.execute(t, body(map[string]string{"code": "exit 1", "language": "bash"}))
	if lines[len(lines)-2]["type"] != "error" || lines[len(lines)-2]["name"] != "KernelDied" {
		t.Fatalf("a dying kernel: %v", lines)
	}
	lines = h.execute(t, body(map[string]string{"code": "echo again", "language": "bash"}))
	if lines[1]["text"] != "again\n" {
		t.Fatalf("the next run: %v", lines)
	}
}
