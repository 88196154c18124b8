package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/engine/enginetest"
)

func TestMain(m *testing.M) { os.Exit(enginetest.Main(m)) }

// Settings of the test server: its own subnet and interface prefix, so that it
// never meets another server on this machine.
const (
	testSubnet    = "10.236.0.0/16"
	testNetPrefix = "lcli"
)

// cmdTimeout bounds one CLI run.
const cmdTimeout = 90 * time.Second

// server is a running `lelantos serve` and the CLI binary to talk to it.
type server struct {
	bin string   // the lelantos binary
	env []string // the environment of CLI runs: ours with client.env's settings
	// vars are client.env's settings.
	vars map[string]string
	cmd  *exec.Cmd
	log  string
	data string // the server's data directory
	// exited reports the process's end; killed is set by kill.
	exited chan error
	killed bool
}

// startServer builds lelantos, starts a server on free loopback ports with
// the extra flags and waits for its client.env. The server is stopped with
// SIGTERM when the test ends; the test kills its sandboxes first.
func startServer(t *testing.T, extra ...string) *server {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: sandboxes use namespaces, cgroups and iptables")
	}
	runsc := filepath.Join(enginetest.CacheDir(), "bin", "runsc")
	if _, err := os.Stat(runsc); err != nil {
		t.Skipf("needs runsc at %s (scripts/install-runsc.sh)", runsc)
	}
	envd := os.Getenv(enginetest.EnvdEnv)
	if envd == "" {
		t.Fatalf("%s is not set: run through enginetest.Main", enginetest.EnvdEnv)
	}
	rootfs := enginetest.BaseRootfs(t)
	dir := t.TempDir()
	bin := buildLelantos(t)
	data := filepath.Join(dir, "data")
	s := &server{bin: bin, log: filepath.Join(dir, "server.log"), data: data}
	logf, err := os.Create(s.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	s.cmd = exec.Command(bin, "serve", "--data-dir", data, "--listen", freeAddr(t), "--sandbox-listen", freeAddr(t),
		"--subnet", testSubnet, "--net-prefix", testNetPrefix, "--warm-pool", "0", "--builtin-templates", "none",
		"--base-rootfs", rootfs, "--runsc", runsc, "--envd", envd)
	s.cmd.Args = append(s.cmd.Args, extra...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start the server: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- s.cmd.Wait() }()
	s.exited = exited
	t.Cleanup(func() { s.stop(t, exited) })
	envPath := filepath.Join(data, "client.env")
	deadline := time.Now().Add(60 * time.Second)
	for {
		if b, err := os.ReadFile(envPath); err == nil && len(b) > 0 {
			s.vars = parseEnv(b)
			break
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("the server exited: %v\n%s", err, s.logText())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server did not write %s in 60s\n%s", envPath, s.logText())
		}
	}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "E2B_") {
			s.env = append(s.env, kv)
		}
	}
	for k, v := range s.vars {
		s.env = append(s.env, k+"="+v)
	}
	return s
}

// kill ends the server with SIGKILL, as a crash would, and waits for it.
func (s *server) kill(t *testing.T) {
	t.Helper()
	s.killed = true
	_ = s.cmd.Process.Kill()
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("the server did not end within 30s of SIGKILL")
	}
}

// buildLelantos builds the lelantos binary into a temporary directory.
func buildLelantos(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "lelantos")
	build := exec.Command("go", "build", "-o", bin, "lelantos.dev/lelantos/cmd/lelantos")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build lelantos: %v\n%s", err, out)
	}
	return bin
}

// stop ends the server with SIGTERM, as a user would, and waits for it.
func (s *server) stop(t *testing.T, exited chan error) {
	if s.killed {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("the server ended with %v\n%s", err, s.logText())
		}
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		t.Errorf("the server did not stop within 30s of SIGTERM\n%s", s.logText())
	}
	// runsc keeps a namespace mount in the node's state directory for the
	// node's life (the server leaves it for its next start).
	if err := enginetest.UnmountUnder(s.data); err != nil {
		t.Error(err)
	}
}

// logText is the end of the server's log, for failure messages.
func (s *server) logText() string {
	b, _ := os.ReadFile(s.log)
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}

// freeAddr returns a loopback address with a port free at the moment.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// parseEnv reads KEY=VALUE lines.
func parseEnv(b []byte) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "="); ok && k != "" && !strings.HasPrefix(k, "#") {
			out[k] = v
		}
	}
	return out
}

// result is one CLI run's outcome.
type result struct {
	stdout, stderr string
	code           int
}

// run runs the CLI with args and stdin, with the server's settings changed by
// env (KEY=VALUE; an empty value unsets in effect), and returns its outcome.
func (s *server) run(t *testing.T, stdin string, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bin, args...)
	cmd.Env = append(append([]string{}, s.env...), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errOut.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		r.code = ee.ExitCode()
	default:
		t.Fatalf("lelantos %s: %v (stderr %q)", strings.Join(args, " "), err, r.stderr)
	}
	return r
}

// cli runs the CLI without stdin and with the server's settings.
func (s *server) cli(t *testing.T, args ...string) result {
	t.Helper()
	return s.run(t, "", nil, args...)
}

// ok runs the CLI and fails the test unless it exits 0; it returns stdout.
func (s *server) ok(t *testing.T, args ...string) string {
	t.Helper()
	r := s.cli(t, args...)
	if r.code != 0 {
		t.Fatalf("lelantos %s: exit %d, stderr %q, stdout %q", strings.Join(args, " "), r.code, r.stderr, r.stdout)
	}
	return r.stdout
}

// create makes a sandbox with the CLI, checks that stdout is its ID alone, and
// kills it when the test ends (unless the test killed it).
func (s *server) create(t *testing.T, args ...string) string {
	t.Helper()
	out := s.ok(t, append([]string{"sandbox", "create"}, args...)...)
	id := strings.TrimSuffix(out, "\n")
	if id == "" || strings.ContainsFunc(id, func(r rune) bool { return (r < 'a' || r > 'z') && (r < '0' || r > '9') }) {
		t.Fatalf("sandbox create printed %q, want the sandbox ID alone", out)
	}
	t.Cleanup(func() { _ = s.run(t, "", nil, "sandbox", "kill", id) })
	return id
}
