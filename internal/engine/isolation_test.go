package engine_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"lelantos.dev/lelantos/internal/engine"
	"lelantos.dev/lelantos/internal/engine/enginetest"
)

// hostListener accepts connections on addr, counting them, until the test ends.
func hostListener(t *testing.T, addr string) (port int, accepted *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted = &atomic.Int64{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port, accepted
}

// probeTCP returns the shell command that prints "host:port open" or "host:port
// closed" for each target, trying them in parallel for at most 3 s each.
func probeTCP(targets ...string) string {
	var b strings.Builder
	for _, tg := range targets {
		host, port, _ := strings.Cut(tg, ":")
		fmt.Fprintf(&b, "(timeout 3 bash -c 'echo > /dev/tcp/%s/%s' 2>/dev/null && echo '%s open' || echo '%s closed') & ", host, port, tg, tg)
	}
	b.WriteString("wait")
	return b.String()
}

// reachable parses probeTCP's output into a map from target to open.
func reachable(t *testing.T, out string) map[string]bool {
	t.Helper()
	m := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		if tg, state, ok := strings.Cut(strings.TrimSpace(l), " "); ok {
			m[tg] = state == "open"
		}
	}
	return m
}

// TestIsolation checks from inside a sandbox that it sees no host processes or files,
// reaches no host service and no other sandbox, while the host reaches both.
func TestIsolation(t *testing.T) {
	node := enginetest.NewNode(t, "10.232.4.0/24")
	e := node.Engine(t)
	a := create(t, e, newSpec(t, "isola"))
	b := create(t, e, newSpec(t, "isolb"))
	epA, ok := node.Network.Get(a.Spec.ID)
	if !ok {
		t.Fatal("no network for sandbox a")
	}
	gw := epA.Gateway.String()

	// Host files the sandbox must not see.
	marker := fmt.Sprintf("lelantos-isolation-%d", os.Getpid())
	var markers []string
	for _, dir := range []string{"/tmp", "/root", "/var", "/etc"} {
		p := filepath.Join(dir, marker)
		if err := os.WriteFile(p, []byte("host secret"), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(p) })
		markers = append(markers, p)
	}
	// Host services the sandbox must not reach.
	anyPort, anyAccepted := hostListener(t, "0.0.0.0:0")
	loPort, loAccepted := hostListener(t, "127.0.0.1:0")

	tests := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"no host processes", func(t *testing.T) {
			self, _ := os.Readlink("/proc/self/exe")
			out := must(t, a, `for p in /proc/[0-9]*; do echo "${p#/proc/} $(tr '\0' ' ' < $p/cmdline 2>/dev/null)"; done`)
			lines := strings.Split(out, "\n")
			for _, l := range lines {
				pid, cmdline, _ := strings.Cut(l, " ")
				switch {
				case pid == strconv.Itoa(os.Getpid()) && strings.Contains(cmdline, filepath.Base(self)):
					t.Errorf("the test process (pid %s) is visible inside: %q", pid, l)
				case strings.Contains(cmdline, filepath.Base(self)), strings.Contains(cmdline, "runsc"),
					strings.Contains(cmdline, node.DataDir), strings.Contains(cmdline, "process_api"):
					t.Errorf("a host process is visible inside: %q", l)
				}
			}
			if len(lines) > 12 {
				t.Errorf("%d processes inside a fresh sandbox, want a handful: %s", len(lines), out)
			}
			if first := must(t, a, "tr '\\0' ' ' < /proc/1/cmdline"); !strings.Contains(first, "/lelantos/envd") {
				t.Errorf("pid 1 inside is %q, want the daemon", first)
			}
			ps := must(t, a, "ps -eo comm= | sort -u | tr '\\n' ' '")
			for _, comm := range strings.Fields(ps) {
				switch comm {
				case "envd", "bash", "ps", "sort", "tr":
				default:
					t.Errorf("ps inside shows %q (all: %s)", comm, ps)
				}
			}
		}},
		{"no host files", func(t *testing.T) {
			var cmd strings.Builder
			for _, p := range markers {
				fmt.Fprintf(&cmd, "if [ -e %[1]s ]; then echo 'present %[1]s'; else echo 'absent %[1]s'; fi; ", p)
			}
			cmd.WriteString("echo inside > /tmp/" + marker)
			out := must(t, a, cmd.String())
			if strings.Count(out, "absent") != len(markers) {
				t.Errorf("host files seen inside: %s", out)
			}
			if got, _ := os.ReadFile(filepath.Join("/tmp", marker)); string(got) != "host secret" {
				t.Errorf("a write inside reached the host's /tmp: %q", got)
			}
		}},
		{"host services unreachable", func(t *testing.T) {
			self := fmt.Sprintf("127.0.0.1:%d", engine.EnvdPort) // control: the daemon inside
			targets := []string{
				self,
				fmt.Sprintf("127.0.0.1:%d", anyPort), fmt.Sprintf("127.0.0.1:%d", loPort),
				fmt.Sprintf("%s:%d", gw, anyPort), fmt.Sprintf("%s:%d", gw, loPort),
			}
			got := reachable(t, must(t, a, probeTCP(targets...)))
			if !got[self] {
				t.Fatalf("control failed: the sandbox cannot reach its own daemon at %s: %v", self, got)
			}
			for _, tg := range targets[1:] {
				if open, ok := got[tg]; !ok || open {
					t.Errorf("%s from inside: open=%v reported=%v", tg, open, ok)
				}
			}
			if n := anyAccepted.Load() + loAccepted.Load(); n != 0 {
				t.Errorf("host listeners accepted %d connections from the sandbox", n)
			}
			// Control: the listeners do accept on the host.
			c, err := net.Dial("tcp4", net.JoinHostPort(gw, strconv.Itoa(anyPort)))
			if err != nil {
				t.Fatalf("host cannot reach its own listener: %v", err)
			}
			c.Close()
		}},
		{"other sandbox unreachable", func(t *testing.T) {
			own := fmt.Sprintf("%s:%d", a.Address, engine.EnvdPort)
			other := fmt.Sprintf("%s:%d", b.Address, engine.EnvdPort)
			got := reachable(t, must(t, a, probeTCP(own, other)))
			if !got[own] || got[other] {
				t.Errorf("from a: own address open=%v (want true), b open=%v (want false)", got[own], got[other])
			}
			got = reachable(t, must(t, b, probeTCP(fmt.Sprintf("%s:%d", a.Address, engine.EnvdPort))))
			if len(got) != 1 || got[own] {
				t.Errorf("from b: a reachable: %v", got)
			}
			for _, s := range []engine.Status{a, b} {
				resp, err := http.Get("http://" + s.Address + ":49983/health")
				if err != nil {
					t.Fatalf("host cannot reach %s: %v", s.Spec.ID, err)
				}
				resp.Body.Close()
				if resp.StatusCode/100 != 2 {
					t.Errorf("host to %s: %s", s.Spec.ID, resp.Status)
				}
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, tc.check)
	}
	for _, s := range []engine.Status{a, b} {
		if err := e.Kill(context.Background(), s.Spec.ID); err != nil {
			t.Errorf("kill %s: %v", s.Spec.ID, err)
		}
	}
}
