package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"lelantos.dev/lelantos/internal/client"
	"lelantos.dev/lelantos/internal/engine/enginetest"
	"lelantos.dev/lelantos/internal/template"
)

// serverParts are the binaries and trees a test server runs with.
type serverParts struct {
	base, runsc, envd, interpreter string
}

// needServerParts finds the pinned runsc and the base tree and builds envd
// (and, when asked, the interpreter) for the test.
func needServerParts(t *testing.T, interpreter bool) serverParts {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: sandboxes use namespaces, cgroups and iptables")
	}
	p := serverParts{runsc: filepath.Join(enginetest.CacheDir(), "bin", "runsc")}
	if _, err := os.Stat(p.runsc); err != nil {
		t.Skipf("needs runsc at %s (scripts/install-runsc.sh)", p.runsc)
	}
	p.base = enginetest.BaseRootfs(t)
	bin := t.TempDir()
	envd, err := enginetest.BuildEnvd(bin)
	if err != nil {
		t.Fatal(err)
	}
	p.envd = envd
	if interpreter {
		p.interpreter = filepath.Join(bin, "interpreter")
		cmd := exec.Command("go", "build", "-o", p.interpreter, "lelantos.dev/lelantos/cmd/interpreter")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build the interpreter: %v\n%s", err, out)
		}
	}
	return p
}

// testServer is `lelantos serve` (runServer) in the test's process, on its
// own data directory, subnet and interface prefix, on free loopback ports.
type testServer struct {
	data    string
	logs    *logRecorder
	api     *client.Client
	started time.Time
	cancel  context.CancelFunc
	done    chan error
}

// startTestServer starts server n (1..99: its subnet and prefix) over cache
// with the built-in templates defs (nil: the embedded ones). It is stopped
// when the test ends.
func startTestServer(t *testing.T, p serverParts, n int, cache string, defs *builtinDefs) *testServer {
	t.Helper()
	data := t.TempDir()
	f := serveFlags{listen: "127.0.0.1:0", sandboxListen: "127.0.0.1:0", builtinNames: "all", dataDir: data,
		baseRootfs: p.base, runsc: p.runsc, envd: p.envd, interpreter: p.interpreter,
		subnet: fmt.Sprintf("10.238.%d.0/24", n), netPrefix: fmt.Sprintf("lbt%d", n), runtimeClasses: []string{"gvisor"},
		buildCacheMB: template.DefaultCacheMaxBytes >> 20, volumeSizeMB: 1024, cacheDir: cache, builtinDefs: defs}
	fs := flag.NewFlagSet("limits", flag.ContinueOnError)
	f.limits.register(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	s := &testServer{data: data, logs: &logRecorder{}, done: make(chan error, 1), started: time.Now()}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() { s.done <- runServer(ctx, f, slog.New(&recordHandler{rec: s.logs})) }()
	t.Cleanup(func() { s.stop(t) })
	deadline := time.Now().Add(60 * time.Second)
	for {
		if b, err := os.ReadFile(filepath.Join(data, "client.env")); err == nil && len(b) > 0 {
			vars := readEnvFile(b)
			api, err := client.New(client.Config{APIURL: vars["E2B_API_URL"], APIKey: vars["E2B_API_KEY"], SandboxURL: vars["E2B_SANDBOX_URL"]})
			if err != nil {
				t.Fatal(err)
			}
			s.api = api
			return s
		}
		select {
		case err := <-s.done:
			s.done <- err
			t.Fatalf("server %d exited: %v\n%s", n, err, s.logs.text())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("server %d wrote no client.env in 60s\n%s", n, s.logs.text())
		}
	}
}

// stop ends the server as SIGTERM would, and detaches runsc's namespace
// mount, which a server leaves in its data directory for its next start.
func (s *testServer) stop(t *testing.T) {
	s.cancel()
	select {
	case err := <-s.done:
		s.done <- err
		if err != nil {
			t.Errorf("the server ended with %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Errorf("the server did not stop within 60s")
	}
	for range 16 {
		if unix.Unmount(filepath.Join(s.data, "node", "runsc", "null-netns"), unix.MNT_DETACH) != nil {
			break
		}
	}
}

// waitReady waits until the server reports the built-in template name ready
// and returns that record, failing on a failed build.
func (s *testServer) waitReady(t *testing.T, name string, timeout time.Duration) logRecord {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, r := range s.logs.all() {
			if r.attrs["template"] != name {
				continue
			}
			if r.msg == "built-in template ready" {
				return r
			}
			if strings.HasPrefix(r.msg, "built-in template: build failed") {
				t.Fatalf("built-in template %s failed: %s\n%s", name, r.attrs["err"], s.logs.text())
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("built-in template %s not ready after %s\n%s", name, timeout, s.logs.text())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// run runs a shell line in a new sandbox of tpl and returns its output; the
// sandbox is killed afterwards.
func (s *testServer) run(t *testing.T, tpl, line string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sb, err := s.api.Create(ctx, client.CreateRequest{TemplateID: tpl, Timeout: 120})
	if err != nil {
		t.Fatalf("create a sandbox of %s: %v\n%s", tpl, err, s.logs.text())
	}
	defer func() {
		if err := s.api.Kill(context.Background(), sb.SandboxID); err != nil {
			t.Errorf("kill sandbox %s: %v", sb.SandboxID, err)
		}
	}()
	d, err := s.api.Daemon(sb.SandboxID, sb.EnvdAccessToken, "")
	if err != nil {
		t.Fatal(err)
	}
	cmd := client.Shell(line)
	cmd.Envs = map[string]string{"ACCESS_TOKEN": sb.EnvdAccessToken}
	proc, err := d.Start(ctx, cmd)
	if err != nil {
		t.Fatalf("run in the sandbox: %v", err)
	}
	var out bytes.Buffer
	end, err := proc.Wait(&out, &out)
	if err != nil || end.Code() != 0 {
		t.Fatalf("%q in the sandbox: %v, %s: %s", line, err, end.Status, out.String())
	}
	return out.String()
}

func readEnvFile(b []byte) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "="); ok {
			out[k] = v
		}
	}
	return out
}

// logRecord is one record of a server's log, its attributes as text.
type logRecord struct {
	at    time.Time
	level slog.Level
	msg   string
	attrs map[string]string
}

// logRecorder keeps a server's log records.
type logRecorder struct {
	mu      sync.Mutex
	records []logRecord
}

func (r *logRecorder) all() []logRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]logRecord(nil), r.records...)
}

// text is the log, for failure messages.
func (r *logRecorder) text() string {
	var b strings.Builder
	for _, rec := range r.all() {
		fmt.Fprintf(&b, "%s %s %s %v\n", rec.at.Format("15:04:05.000"), rec.level, rec.msg, rec.attrs)
	}
	return b.String()
}

// count counts the records whose message starts with prefix.
func (r *logRecorder) count(prefix string) int {
	n := 0
	for _, rec := range r.all() {
		if strings.HasPrefix(rec.msg, prefix) {
			n++
		}
	}
	return n
}

// recordHandler is a slog.Handler into a logRecorder.
type recordHandler struct {
	rec   *logRecorder
	attrs []slog.Attr
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	lr := logRecord{at: r.Time, level: r.Level, msg: r.Message, attrs: map[string]string{}}
	for _, a := range h.attrs {
		lr.attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		lr.attrs[a.Key] = a.Value.String()
		return true
	})
	h.rec.mu.Lock()
	defer h.rec.mu.Unlock()
	h.rec.records = append(h.rec.records, lr)
	return nil
}

func (h *recordHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &recordHandler{rec: h.rec, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}

func (h *recordHandler) WithGroup(string) slog.Handler { return h }
