package cli

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// output collects what a running CLI prints.
type output struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// waitFor waits until the output holds want.
func (o *output) waitFor(t *testing.T, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(o.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the output within %v:\n%s", want, timeout, o.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// running is a CLI run in the background.
type running struct {
	*output
	cmd    *exec.Cmd
	stderr *output
	done   chan error
}

// follow starts the CLI in the background, its output collected.
func (s *server) follow(t *testing.T, args ...string) *running {
	t.Helper()
	r := &running{output: &output{}, stderr: &output{}, done: make(chan error, 1)}
	r.cmd = exec.Command(s.bin, args...)
	r.cmd.Env = s.env
	r.cmd.Stdout, r.cmd.Stderr = r.output, r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.done <- r.cmd.Wait() }()
	t.Cleanup(func() { _ = r.cmd.Process.Kill() })
	return r
}

// stop interrupts the run (SIGINT, as Ctrl-C does), checks that it ended
// with status 0 and returns its output.
func (r *running) stop(t *testing.T) string {
	t.Helper()
	_ = r.cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("interrupted: %v, stderr %q", err, r.stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("still running 10s after SIGINT")
	}
	return r.String()
}

// testExecSignal checks that SIGINT reaches the command as SIGTERM (the
// daemon's protocol has no SIGINT) and that its end becomes our exit status.
func testExecSignal(t *testing.T, s *server, a string) {
	r := s.follow(t, "sandbox", "exec", a, "--", "sh", "-c", "echo started; exec sleep 60")
	r.waitFor(t, "started", 30*time.Second)
	start := time.Now()
	_ = r.cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-r.done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 128+int(syscall.SIGTERM) {
			t.Errorf("exec after SIGINT: %v, want exit status 143 (SIGTERM)", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("exec still running 20s after SIGINT")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the command took %v to end after SIGINT", d)
	}
}

// terminal is the CLI run on a pseudo-terminal, as in a user's terminal.
type terminal struct {
	*output
	ptmx, tty *os.File
	cmd       *exec.Cmd
	done      chan error
}

// startTerminal runs the CLI with a pseudo-terminal of rows x cols as its
// controlling terminal, stdin, stdout and stderr.
func (s *server) startTerminal(t *testing.T, rows, cols uint16, args ...string) *terminal {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatalf("open a pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { ptmx.Close(); tty.Close() })
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: rows, Cols: cols}); err != nil {
		t.Fatal(err)
	}
	term := &terminal{output: &output{}, ptmx: ptmx, tty: tty, done: make(chan error, 1)}
	term.cmd = exec.Command(s.bin, args...)
	term.cmd.Env = append(append([]string{}, s.env...), "TERM=xterm")
	term.cmd.Stdin, term.cmd.Stdout, term.cmd.Stderr = tty, tty, tty
	term.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := term.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = io.Copy(term.output, ptmx) }()
	go func() { term.done <- term.cmd.Wait() }()
	t.Cleanup(func() { _ = term.cmd.Process.Kill() })
	return term
}

// typeLine types a line and Enter.
func (term *terminal) typeLine(t *testing.T, line string) {
	t.Helper()
	if _, err := term.ptmx.Write([]byte(line + "\r")); err != nil {
		t.Fatal(err)
	}
}

// wait waits for the CLI to end and returns its exit status.
func (term *terminal) wait(t *testing.T) int {
	t.Helper()
	select {
	case err := <-term.done:
		var ee *exec.ExitError
		switch {
		case err == nil:
			return 0
		case errors.As(err, &ee):
			return ee.ExitCode()
		}
		t.Fatalf("wait: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatalf("still running after 30s:\n%s", term.String())
	}
	return -1
}

func testShell(t *testing.T, s *server, a string) {
	unknown := s.startTerminal(t, 24, 80, "sandbox", "shell", "nosuch1")
	if code := unknown.wait(t); code != 1 {
		t.Errorf("shell in an unknown sandbox: exit %d, want 1", code)
	}
	unknown.waitFor(t, `lelantos: sandbox shell: sandbox "nosuch1" not found`, 5*time.Second)

	term := s.startTerminal(t, 24, 80, "sandbox", "shell", a)
	term.typeLine(t, "echo hi-$((1+2))")
	term.waitFor(t, "hi-3", 30*time.Second)
	term.typeLine(t, "stty size; echo size-$GREETING")
	term.waitFor(t, "24 80", 10*time.Second)
	term.waitFor(t, "size-hello from env", 10*time.Second)
	// The local terminal is raw while the shell runs: no local echo, no
	// line editing.
	st, err := unix.IoctlGetTermios(int(term.tty.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if st.Lflag&(unix.ECHO|unix.ICANON) != 0 {
		t.Errorf("the local terminal is not in raw mode during the shell: lflag %#x", st.Lflag)
	}
	if err := pty.Setsize(term.ptmx, &pty.Winsize{Rows: 40, Cols: 100}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(term.String(), "40 100") {
		if time.Now().After(deadline) {
			t.Fatalf("the resize did not reach the shell:\n%s", term.String())
		}
		term.typeLine(t, "stty size")
		time.Sleep(300 * time.Millisecond)
	}
	term.typeLine(t, "exit 5")
	if code := term.wait(t); code != 5 {
		t.Errorf("shell exit status %d, want 5:\n%s", code, term.String())
	}
	st, err = unix.IoctlGetTermios(int(term.tty.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if st.Lflag&(unix.ECHO|unix.ICANON) != unix.ECHO|unix.ICANON {
		t.Errorf("the local terminal was not restored after the shell: lflag %#x", st.Lflag)
	}
}
