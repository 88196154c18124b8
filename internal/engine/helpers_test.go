package engine_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"lelantos.dev/lelantos/internal/engine"
	"lelantos.dev/lelantos/internal/engine/enginetest"
	"lelantos.dev/lelantos/internal/gen/envd/process"
	"lelantos.dev/lelantos/internal/gen/envd/process/processconnect"
)

func TestMain(m *testing.M) { os.Exit(enginetest.Main(m)) }

// cmdTimeout bounds one command run in a sandbox.
const cmdTimeout = 90 * time.Second

// result is how a command run in a sandbox ended.
type result struct {
	Out  string // stdout and stderr, trimmed
	Code int
}

// sh runs a bash command in the sandbox through its daemon's process API, as the
// sandbox's default user, presenting token.
func sh(ctx context.Context, addr, token, cmd string) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	c := processconnect.NewProcessClient(&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}, "http://"+addr+":49983")
	req := connect.NewRequest(&process.StartRequest{Process: &process.ProcessConfig{Cmd: "/bin/bash", Args: []string{"-c", cmd}}})
	if token != "" {
		req.Header().Set("X-Access-Token", token)
	}
	stream, err := c.Start(ctx, req)
	if err != nil {
		return result{}, fmt.Errorf("run %q: %w", cmd, err)
	}
	defer stream.Close()
	var out strings.Builder
	res := result{Code: -1}
	for stream.Receive() {
		ev := stream.Msg().GetEvent()
		if d := ev.GetData(); d != nil {
			out.Write(d.GetStdout())
			out.Write(d.GetStderr())
		}
		if end := ev.GetEnd(); end != nil {
			res.Code = int(end.GetExitCode())
		}
	}
	res.Out = strings.TrimSpace(out.String())
	if err := stream.Err(); err != nil {
		return res, fmt.Errorf("run %q: %w", cmd, err)
	}
	return res, nil
}

// must runs cmd in the sandbox and fails the test unless it exits 0.
func must(t testing.TB, st engine.Status, cmd string) string {
	t.Helper()
	r, err := sh(context.Background(), st.Address, st.Spec.AccessToken, cmd)
	if err != nil {
		t.Fatalf("sandbox %s: %v", st.Spec.ID, err)
	}
	if r.Code != 0 {
		t.Fatalf("sandbox %s: %q exited %d: %s", st.Spec.ID, cmd, r.Code, r.Out)
	}
	return r.Out
}

// mustInt runs cmd and parses its output as an integer.
func mustInt(t testing.TB, st engine.Status, cmd string) int {
	t.Helper()
	out := must(t, st, cmd)
	n, err := strconv.Atoi(out)
	if err != nil {
		t.Fatalf("sandbox %s: %q printed %q, want a number", st.Spec.ID, cmd, out)
	}
	return n
}

// newSpec is a small sandbox of the base template whose commands run as root.
func newSpec(t testing.TB, id string) engine.Spec {
	return engine.Spec{
		ID: id, TemplateID: "base", RootfsPath: enginetest.BaseRootfs(t),
		CPUCount: 1, MemoryMB: 256, DiskSizeMB: 256,
		AccessToken: "tok-" + id, DefaultUser: "root",
	}
}

// create creates a sandbox and makes sure it is gone when the test ends.
func create(t testing.TB, e *engine.Engine, s engine.Spec) engine.Status {
	t.Helper()
	st, err := e.Create(context.Background(), s)
	if err != nil {
		t.Fatalf("create %s: %v", s.ID, err)
	}
	t.Cleanup(func() { killed(t, e, s.ID) })
	return st
}

// killed kills a sandbox unless it is already gone.
func killed(t testing.TB, e *engine.Engine, id string) {
	t.Helper()
	if err := e.Kill(context.Background(), id); err != nil && !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("kill %s: %v", id, err)
	}
}

// counterCmd starts, in the background, a shell loop that keeps a counter in its
// memory and publishes it in /tmp/counter every 50 ms.
const counterCmd = `nohup bash -c 'i=0; while :; do i=$((i+1)); echo $i > /tmp/counter.new; mv /tmp/counter.new /tmp/counter; sleep 0.05; done' >/dev/null 2>&1 &`

// readCounter is the command that prints the counter.
const readCounter = `cat /tmp/counter`

// waitCounter waits until the sandbox's counter reaches at least n and returns it.
func waitCounter(t testing.TB, st engine.Status, n int) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, err := sh(context.Background(), st.Address, st.Spec.AccessToken, readCounter)
		if err == nil && r.Code == 0 {
			if v, err := strconv.Atoi(r.Out); err == nil && v >= n {
				return v
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("sandbox %s: counter did not reach %d: %+v %v", st.Spec.ID, n, r, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitState polls the sandbox until it is in state want or timeout passes.
func waitState(t testing.TB, e *engine.Engine, id string, want engine.State, timeout time.Duration) engine.Status {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st, err := e.Get(id)
		if err != nil {
			t.Fatalf("get %s: %v", id, err)
		}
		if st.State == want {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("sandbox %s is %s after %v, want %s (reason %q)", id, st.State, timeout, want, st.Reason)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// answers reports whether the sandbox's daemon answers /health within a second.
func answers(addr string) bool {
	c := http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + ":49983/health")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode/100 == 2
}
