package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"slices"
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

// benchSubnet is this package's sandbox subnet; enginetest derives the node's
// interface names and firewall chains from it, so they never clash with other tests'.
const benchSubnet = "10.236.0.0/16"

// cmdTimeout bounds one command run in a sandbox.
const cmdTimeout = 60 * time.Second

// envInt reads a positive count from the environment, or returns def.
func envInt(tb testing.TB, name string, def int) int {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		tb.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// percentile returns the p-th percentile (nearest rank) of d.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// ms is d in milliseconds.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// reportDist reports the median and 99th percentile of d as <name>-p50-ms and
// <name>-p99-ms.
func reportDist(b *testing.B, name string, d []time.Duration) {
	b.ReportMetric(ms(percentile(d, 50)), name+"-p50-ms")
	b.ReportMetric(ms(percentile(d, 99)), name+"-p99-ms")
}

// rig is one real engine on a fresh test node.
type rig struct {
	node   *enginetest.Node
	e      *engine.Engine
	rootfs string
}

// newRig starts an engine on a fresh node; every sandbox it still holds is killed
// when the benchmark ends, then the node removes its networks and runsc's mounts.
func newRig(b *testing.B) *rig {
	b.Helper()
	node := enginetest.NewNode(b, benchSubnet)
	r := &rig{node: node, e: node.Engine(b), rootfs: enginetest.BaseRootfs(b)}
	b.Cleanup(func() {
		for _, st := range r.e.List() {
			if err := r.e.Kill(context.Background(), st.Spec.ID); err != nil && !errors.Is(err, engine.ErrNotFound) {
				b.Errorf("clean up sandbox %s: %v", st.Spec.ID, err)
			}
		}
	})
	return r
}

// spec is a sandbox of the base template with what the API gives one by default
// (2 CPUs, 512 MB memory, 2048 MB disk, internet access), on the gVisor runtime.
func (r *rig) spec(id string) engine.Spec {
	return engine.Spec{
		ID: id, TemplateID: "base", RootfsPath: r.rootfs,
		CPUCount: 2, MemoryMB: 512, DiskSizeMB: 2048,
		AccessToken: "tok-" + id, DefaultUser: "root", AllowInternet: true,
	}
}

// create creates a sandbox or fails the benchmark.
func (r *rig) create(b *testing.B, s engine.Spec) engine.Status {
	b.Helper()
	st, err := r.e.Create(context.Background(), s)
	if err != nil {
		b.Fatalf("create %s: %v", s.ID, err)
	}
	return st
}

// newClient is an HTTP client with its own connections, as a new client has.
func newClient() *http.Client { return &http.Client{Transport: &http.Transport{}} }

// run runs cmd in the sandbox through its daemon's process API as the e2b clients'
// commands.run does (/bin/bash -l -c cmd) and returns its output and exit code.
func run(ctx context.Context, hc *http.Client, st engine.Status, cmd string) (string, int, error) {
	return start(ctx, hc, st, &process.ProcessConfig{Cmd: "/bin/bash", Args: []string{"-l", "-c", cmd}})
}

// start runs one process in the sandbox through its daemon's process API, waits for
// its end and returns its output and exit code.
func start(ctx context.Context, hc *http.Client, st engine.Status, pc *process.ProcessConfig) (string, int, error) {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	c := processconnect.NewProcessClient(hc, "http://"+st.Address+":"+strconv.Itoa(engine.EnvdPort))
	req := connect.NewRequest(&process.StartRequest{Process: pc})
	if st.Spec.AccessToken != "" {
		req.Header().Set("X-Access-Token", st.Spec.AccessToken)
	}
	what := strings.Join(append([]string{pc.GetCmd()}, pc.GetArgs()...), " ")
	stream, err := c.Start(ctx, req)
	if err != nil {
		return "", -1, fmt.Errorf("run %q in %s: %w", what, st.Spec.ID, err)
	}
	defer stream.Close()
	var out strings.Builder
	code := -1
	for stream.Receive() {
		ev := stream.Msg().GetEvent()
		if d := ev.GetData(); d != nil {
			out.Write(d.GetStdout())
			out.Write(d.GetStderr())
		}
		if end := ev.GetEnd(); end != nil {
			code = int(end.GetExitCode())
		}
	}
	if err := stream.Err(); err != nil {
		return out.String(), code, fmt.Errorf("run %q in %s: %w", what, st.Spec.ID, err)
	}
	return strings.TrimSpace(out.String()), code, nil
}

// must runs cmd in the sandbox and fails the benchmark unless it exits 0.
func must(b *testing.B, st engine.Status, cmd string) string {
	b.Helper()
	hc := newClient()
	defer hc.CloseIdleConnections()
	out, code, err := run(context.Background(), hc, st, cmd)
	if err != nil || code != 0 {
		b.Fatalf("sandbox %s: %q: exit %d, %v: %s", st.Spec.ID, cmd, code, err, out)
	}
	return out
}

// waitFor runs cmd in the sandbox until it exits 0, and returns its output.
func waitFor(b *testing.B, st engine.Status, cmd string, timeout time.Duration) string {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for {
		hc := newClient()
		out, code, err := run(context.Background(), hc, st, cmd)
		hc.CloseIdleConnections()
		if err == nil && code == 0 {
			return out
		}
		if time.Now().After(deadline) {
			b.Fatalf("sandbox %s: %q did not succeed within %v: exit %d, %v: %s", st.Spec.ID, cmd, timeout, code, err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// vmRSSMB parses the VmRSS line of a /proc/<pid>/status into MiB.
func vmRSSMB(status string) (float64, error) {
	for _, l := range strings.Split(status, "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS %q: %w", l, err)
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS line in %q", status)
}
