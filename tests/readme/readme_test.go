// Package readme runs the README's first section the way a new user does: a fresh
// clone, `make run` with no flags and no environment, the client snippet exactly as
// the README shows it, a stop with SIGTERM and a second start that still serves a
// sandbox made before the stop.
package readme

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// snippetMarker precedes, in README.md, the fenced block a user pastes into a
// second shell once the server is ready.
const snippetMarker = "<!-- readme-test: client -->"

// readyLines are what the README says `make run` prints when the server is ready.
var readyLines = []string{"Lelantos is ready.", "API:", "Sandbox URL:", "API key:"}

func TestReadmeQuickstart(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: make run starts sandboxes (namespaces, cgroups, iptables)")
	}
	for _, port := range []string{"3000", "3001"} {
		if ln, err := net.Listen("tcp", "127.0.0.1:"+port); err != nil {
			t.Fatalf("port %s is taken (is a `make run` already running?): the README's server needs it: %v", port, err)
		} else {
			ln.Close()
		}
	}
	clone := cloneRepo(t)
	snippet, err := extractSnippet(filepath.Join(clone, "README.md"))
	if err != nil {
		t.Fatal(err)
	}

	srv := startMakeRun(t, clone)
	out := runShell(t, clone, snippet)
	if !strings.Contains(out, "Linux") {
		t.Fatalf("the README's snippet printed no `uname -a` line:\n%s", out)
	}

	// A sandbox made before a restart must still work after it.
	id := strings.TrimSpace(runNode(t, clone, `
const {Sandbox} = require('e2b')
Sandbox.create({timeoutMs: 600000}).then(async s => {
  await s.files.write('/home/user/before-restart.txt', 'kept')
  await s.commands.run('sleep 3600 >/dev/null 2>&1 &', {background: true})
  console.log(s.sandboxId)
})`))
	if id == "" {
		t.Fatal("no sandbox id printed")
	}
	srv.stop(t)
	srv = startMakeRun(t, clone)
	got := runNode(t, clone, fmt.Sprintf(`
const {Sandbox} = require('e2b')
Sandbox.connect(%q).then(async s => {
  const kept = await s.files.read('/home/user/before-restart.txt')
  const r = await s.commands.run('pgrep -c sleep && echo alive')
  console.log(kept + ' ' + r.stdout.trim().split('\n').pop())
  await s.kill()
})`, id))
	if strings.TrimSpace(got) != "kept alive" {
		t.Fatalf("after the restart the sandbox answered %q, want \"kept alive\"", got)
	}
	srv.stop(t)
}

// cloneRepo clones the repository holding this test into a temporary directory.
func cloneRepo(t *testing.T) string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "lelantos")
	cmd := exec.Command("git", "clone", "--quiet", "--no-hardlinks", root, dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v: %s", err, out)
	}
	t.Cleanup(func() {
		// runsc may have left its namespace mounts in the data directories
		// (stacked when sandboxes started at once): detach every mount under
		// the clone until none is left.
		for range 16 {
			points := mountsUnder(dir)
			if len(points) == 0 {
				break
			}
			for _, p := range points {
				_ = exec.Command("umount", "-l", p).Run()
			}
		}
	})
	return dir
}

// mountsUnder lists the mount points at or below dir.
func mountsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			points = append(points, f[4])
		}
	}
	return points
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// extractSnippet returns the fenced block that follows snippetMarker.
func extractSnippet(readme string) (string, error) {
	b, err := os.ReadFile(readme)
	if err != nil {
		return "", err
	}
	_, after, ok := strings.Cut(string(b), snippetMarker)
	if !ok {
		return "", fmt.Errorf("%s has no %q before the client snippet", readme, snippetMarker)
	}
	_, body, ok := strings.Cut(after, "```sh\n")
	if !ok {
		return "", fmt.Errorf("%s: no ```sh block after %q", readme, snippetMarker)
	}
	body, _, ok = strings.Cut(body, "```")
	if !ok {
		return "", fmt.Errorf("%s: the client snippet's block is not closed", readme)
	}
	return body, nil
}

// userEnv is the environment of a new user's shell: this one's, without anything
// that configures Lelantos or the e2b clients.
func userEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "LELANTOS_") || strings.HasPrefix(kv, "E2B_") || strings.HasPrefix(kv, "NODE_PATH=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// server is a running `make run`.
type server struct {
	cmd  *exec.Cmd
	done chan error
	out  *syncBuffer
}

// startMakeRun runs `make run` in dir and waits for the ready lines.
func startMakeRun(t *testing.T, dir string) *server {
	t.Helper()
	return startMake(t, dir, "run", readyLines)
}

// startMake runs `make target` in dir and waits for ready, lines it prints in
// that order.
func startMake(t *testing.T, dir, target string, ready []string) *server {
	t.Helper()
	out := &syncBuffer{}
	cmd := exec.Command("make", target)
	cmd.Dir, cmd.Env = dir, userEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatalf("make run: %v", err)
	}
	s := &server{cmd: cmd, done: make(chan error, 1), out: out}
	seen := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		missing := append([]string(nil), ready...)
		for sc.Scan() {
			line := sc.Text()
			out.WriteLine(line)
			if len(missing) > 0 && strings.Contains(line, missing[0]) {
				missing = missing[1:]
				if len(missing) == 0 {
					close(seen)
				}
			}
		}
	}()
	go func() {
		err := cmd.Wait()
		pw.Close()
		s.done <- err
	}()
	t.Cleanup(func() { s.kill() })
	select {
	case <-seen:
		return s
	case err := <-s.done:
		t.Fatalf("make %s exited before it was ready (%v); its output:\n%s", target, err, out.Tail(60))
	case <-time.After(20 * time.Minute):
		t.Fatalf("make %s not ready after 20 minutes; its output:\n%s", target, out.Tail(60))
	}
	return nil
}

// stop sends SIGTERM to make and the server, as the README says, and waits until
// the server has shut down cleanly and every process of the group is gone.
func (s *server) stop(t *testing.T) {
	t.Helper()
	s.end(t)
	if !strings.Contains(s.out.Tail(20), "shutting down") {
		t.Fatalf("the server did not shut down cleanly on SIGTERM; its output:\n%s", s.out.Tail(40))
	}
}

// end sends SIGTERM to the process group of make and waits until every
// process of it is gone.
func (s *server) end(t *testing.T) {
	t.Helper()
	pgid := s.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	deadline := time.Now().Add(60 * time.Second)
	for syscall.Kill(-pgid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("make run still running 60 s after SIGTERM; its output:\n%s", s.out.Tail(40))
		}
		time.Sleep(100 * time.Millisecond)
	}
	<-s.done
	s.done <- nil
}

func (s *server) kill() {
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
}

// runShell runs script in a fresh bash in dir, as a user pasting it would.
func runShell(t *testing.T, dir, script string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-e", "-c", script)
	cmd.Dir, cmd.Env = dir, userEnv()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("the README's snippet failed: %v\n--- snippet ---\n%s--- output ---\n%s", err, script, out.String())
	}
	return out.String()
}

// runNode runs a node program with the client environment the README sets up.
func runNode(t *testing.T, dir, program string) string {
	t.Helper()
	return runShell(t, dir, "set -a; . .lelantos/client.env; set +a\nnode -e "+shellQuote(program)+"\n")
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'" }

// syncBuffer keeps the output of a server for failure messages.
type syncBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (b *syncBuffer) WriteLine(l string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lines = append(b.lines, l)
}

// Tail returns the last n lines.
func (b *syncBuffer) Tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	from := max(0, len(b.lines)-n)
	return strings.Join(b.lines[from:], "\n")
}
