package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/client"
)

// TestSandboxCommands runs every `lelantos sandbox` subcommand against one real
// server, as a user would, on sandboxes shared by the steps.
func TestSandboxCommands(t *testing.T) {
	s := startServer(t)
	a := s.create(t, "--metadata", "app=cli", "--metadata", "team=a", "--env", "GREETING=hello from env", "--timeout", "600")
	b := s.create(t, "--template", "base", "--metadata", "app=cli", "--metadata", "team=b")

	t.Run("ls", func(t *testing.T) { testList(t, s, a, b) })
	t.Run("info", func(t *testing.T) { testInfo(t, s, a) })
	t.Run("exec", func(t *testing.T) { testExec(t, s, a) })
	t.Run("shell", func(t *testing.T) { testShell(t, s, a) })
	t.Run("cp", func(t *testing.T) { testCopy(t, s, a) })
	t.Run("metrics", func(t *testing.T) { testMetrics(t, s, a) })
	t.Run("pause and resume, logs", func(t *testing.T) { testPauseResume(t, s, b) })
	t.Run("errors", func(t *testing.T) { testErrors(t, s, a) })
	t.Run("nodes", func(t *testing.T) { testNodes(t, s, a) })
	t.Run("kill", func(t *testing.T) { testKill(t, s, a, b) })
}

// listed runs `sandbox ls --json` with args and returns the IDs listed.
func listed(t *testing.T, s *server, args ...string) []string {
	t.Helper()
	var list []client.ListedSandbox
	out := s.ok(t, append([]string{"sandbox", "ls", "--json"}, args...)...)
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("sandbox ls --json: %v: %q", err, out)
	}
	ids := []string{}
	for _, sb := range list {
		ids = append(ids, sb.SandboxID)
	}
	slices.Sort(ids)
	return ids
}

// sorted returns ids sorted.
func sorted(ids ...string) []string {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	return ids
}

func testList(t *testing.T, s *server, a, b string) {
	table := s.ok(t, "sandbox", "ls")
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if !regexp.MustCompile(`^ID\s+TEMPLATE\s+STATE\s+STARTED\s+END\s+CPU\s+MEMORY\s+METADATA$`).MatchString(lines[0]) {
		t.Errorf("ls header %q", lines[0])
	}
	row := regexp.MustCompile(`(?m)^` + a + `\s+base\s+running\s+\S+ \S+\s+\S+ \S+\s+2\s+512 MB\s+app=cli,team=a$`)
	if !row.MatchString(table) || !strings.Contains(table, b) {
		t.Errorf("ls table lacks the rows of %s and %s:\n%s", a, b, table)
	}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"all", nil, sorted(a, b)},
		{"by metadata", []string{"--metadata", "team=a"}, []string{a}},
		{"by two pairs", []string{"--metadata", "app=cli", "--metadata", "team=b"}, []string{b}},
		{"no match", []string{"--metadata", "team=c"}, []string{}},
		{"running", []string{"--state", "running"}, sorted(a, b)},
		{"paused", []string{"--state", "paused"}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := listed(t, s, tt.args...); !slices.Equal(got, tt.want) {
				t.Errorf("ls %v listed %v, want %v", tt.args, got, tt.want)
			}
		})
	}
	// Paging: one sandbox per page, following X-Next-Token.
	c, err := client.New(client.Config{APIURL: s.vars["E2B_API_URL"], APIKey: s.vars["E2B_API_KEY"]})
	if err != nil {
		t.Fatal(err)
	}
	list, err := c.List(context.Background(), client.ListOptions{PageSize: 1, Metadata: map[string]string{"app": "cli"}})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, sb := range list {
		ids = append(ids, sb.SandboxID)
	}
	if slices.Sort(ids); !slices.Equal(ids, sorted(a, b)) {
		t.Errorf("paged listing %v, want %v", ids, sorted(a, b))
	}
}

func testInfo(t *testing.T, s *server, a string) {
	out := s.ok(t, "sandbox", "info", a)
	for _, want := range []string{"ID          " + a, "STATE       running", "TEMPLATE    base", "METADATA    app=cli,team=a", "MEMORY      512 MB"} {
		if !strings.Contains(out, want) {
			t.Errorf("info lacks %q:\n%s", want, out)
		}
	}
	var d client.SandboxDetail
	if err := json.Unmarshal([]byte(s.ok(t, "sandbox", "info", "--json", a)), &d); err != nil {
		t.Fatal(err)
	}
	if d.SandboxID != a || d.State != "running" || d.Metadata["team"] != "a" || time.Until(d.EndAt) < 500*time.Second {
		t.Errorf("info --json: %+v (want 600 s of lifetime)", d)
	}
}

func testExec(t *testing.T, s *server, a string) {
	tests := []struct {
		name           string
		stdin          string
		args           []string
		stdout, stderr string
		code           int
	}{
		{"exit code and streams", "", []string{"--", "sh", "-c", "echo out; echo err >&2; exit 3"}, "out\n", "err\n", 3},
		{"one string runs in bash", "", []string{"echo hi-$((1+2)) $GREETING"}, "hi-3 hello from env\n", "", 0},
		{"argv as is", "", []string{"--", "printf", "%s|", "a b", "$HOME"}, "a b|$HOME|", "", 0},
		{"flags after the ID", "", []string{"--user", "root", "--cwd", "/tmp", "--env", "X=1", "--", "sh", "-c", "echo $X $(pwd) $(whoami)"},
			"1 /tmp root\n", "", 0},
		{"default user and home", "", []string{"whoami; pwd"}, "user\n/home/user\n", "", 0},
		{"stdin piped", "piped input\nsecond line\n", []string{"--", "sh", "-c", "tr a-z A-Z; echo done"}, "PIPED INPUT\nSECOND LINE\ndone\n", "", 0},
		{"one string: bash's status", "", []string{"/no/such/program"}, "", "/bin/bash: line 1: /no/such/program: No such file or directory\n", 127},
		{"no such program", "", []string{"--", "/no/such/program", "arg"}, "", "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.run(t, tt.stdin, nil, append([]string{"sandbox", "exec", a}, tt.args...)...)
			if r.code != tt.code || tt.name != "no such program" && (r.stdout != tt.stdout || r.stderr != tt.stderr) {
				t.Errorf("exec %v: exit %d, stdout %q, stderr %q; want %d, %q, %q", tt.args, r.code, r.stdout, r.stderr, tt.code, tt.stdout, tt.stderr)
			}
			if tt.name == "no such program" && (!strings.Contains(r.stderr, "/no/such/program") || strings.Count(r.stderr, "\n") != 1) {
				t.Errorf("exec of a missing program: stderr %q, want one line naming it", r.stderr)
			}
		})
	}
	t.Run("SIGINT is passed on", func(t *testing.T) { testExecSignal(t, s, a) })
}

func testMetrics(t *testing.T, s *server, a string) {
	out := s.ok(t, "sandbox", "metrics", a)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "TIME") || !strings.Contains(lines[1], "MiB") {
		t.Errorf("metrics table:\n%s", out)
	}
	var ms []client.Metric
	if err := json.Unmarshal([]byte(s.ok(t, "sandbox", "metrics", "--json", a)), &ms); err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || ms[len(ms)-1].MemTotal <= 0 || ms[len(ms)-1].CPUCount != 2 {
		t.Errorf("metrics --json: %+v", ms)
	}
}

func testPauseResume(t *testing.T, s *server, b string) {
	follow := s.follow(t, "sandbox", "logs", "-f", b)
	if out := s.ok(t, "sandbox", "pause", b); out != b+"\n" {
		t.Errorf("pause printed %q", out)
	}
	if out := s.ok(t, "sandbox", "info", b); !strings.Contains(out, "STATE       paused") {
		t.Errorf("info after pause:\n%s", out)
	}
	if got := listed(t, s, "--state", "paused"); !slices.Equal(got, []string{b}) {
		t.Errorf("ls --state paused: %v, want [%s]", got, b)
	}
	r := s.cli(t, "sandbox", "exec", b, "true")
	if want := fmt.Sprintf("lelantos: sandbox exec: sandbox %q is paused: resume it first (lelantos sandbox resume %s)\n", b, b); r.code != 1 || r.stderr != want {
		t.Errorf("exec in a paused sandbox: exit %d, stderr %q; want 1, %q", r.code, r.stderr, want)
	}
	if r := s.cli(t, "sandbox", "pause", b); r.code != 1 || !strings.Contains(r.stderr, "paused") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("pause twice: exit %d, stderr %q", r.code, r.stderr)
	}
	if out := s.ok(t, "sandbox", "resume", b, "--timeout", "120"); out != b+"\n" {
		t.Errorf("resume printed %q", out)
	}
	var d client.SandboxDetail
	if err := json.Unmarshal([]byte(s.ok(t, "sandbox", "info", b, "--json")), &d); err != nil {
		t.Fatal(err)
	}
	if left := time.Until(d.EndAt); d.State != "running" || left > 125*time.Second || left < 60*time.Second {
		t.Errorf("after resume --timeout 120: state %s, %v left", d.State, left)
	}
	if out := s.ok(t, "sandbox", "exec", b, "echo back"); out != "back\n" {
		t.Errorf("exec after resume: %q", out)
	}
	follow.waitFor(t, "sandbox resumed", 20*time.Second)
	logs := follow.stop(t)
	if !strings.Contains(logs, "sandbox created") || !strings.Contains(logs, "sandbox paused") {
		t.Errorf("logs -f printed:\n%s", logs)
	}
	seen := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		if seen[l] {
			t.Errorf("logs -f printed %q twice:\n%s", l, logs)
		}
		seen[l] = true
	}
	out := s.ok(t, "sandbox", "logs", b)
	if !regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}  sandbox created`).MatchString(out) || !strings.Contains(out, "sandbox resumed") {
		t.Errorf("logs:\n%s", out)
	}
	if out := s.ok(t, "sandbox", "logs", "--since", "1h", b); !strings.Contains(out, "sandbox resumed") {
		t.Errorf("logs --since 1h:\n%s", out)
	}
}

func testKill(t *testing.T, s *server, a, b string) {
	c := s.create(t)
	if out := s.ok(t, "sandbox", "kill", a); out != a+"\n" {
		t.Errorf("kill printed %q", out)
	}
	if out := s.ok(t, "sandbox", "kill", b, c); out != b+"\n"+c+"\n" {
		t.Errorf("kill of two printed %q", out)
	}
	if got := listed(t, s); len(got) != 0 {
		t.Errorf("sandboxes left after kill: %v", got)
	}
	r := s.cli(t, "sandbox", "kill", a, "nosuch1")
	want := fmt.Sprintf("lelantos: sandbox kill: sandbox %q not found\nlelantos: sandbox kill: sandbox \"nosuch1\" not found\n", a)
	if r.code != 1 || r.stderr != want || r.stdout != "" {
		t.Errorf("kill of killed ones: exit %d, stderr %q, stdout %q; want 1, %q", r.code, r.stderr, r.stdout, want)
	}
	// A daemon handle on a killed sandbox: the proxy's answer is "not found".
	cl, err := client.New(client.Config{APIURL: s.vars["E2B_API_URL"], APIKey: s.vars["E2B_API_KEY"], SandboxURL: s.vars["E2B_SANDBOX_URL"]})
	if err != nil {
		t.Fatal(err)
	}
	d, err := cl.Daemon(a, "token", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.IsDir(context.Background(), "/tmp", ""); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("daemon call to a killed sandbox: %v, want not found", err)
	}
}
