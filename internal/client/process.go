package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"

	"connectrpc.com/connect"

	pb "lelantos.dev/lelantos/internal/gen/envd/process"
)

// keepaliveSeconds is the keepalive interval asked of process streams, so
// that idle streams are not cut by the proxies in between.
const keepaliveSeconds = "30"

// Command is a process to start in a sandbox.
type Command struct {
	// Cmd is the program (looked up in PATH) and Args its arguments.
	Cmd  string
	Args []string
	// Envs are added to the sandbox's environment.
	Envs map[string]string
	// Cwd is the working directory; the user's home when empty.
	Cwd string
	// User runs the process; the sandbox's default user when empty.
	User string
	// Stdin keeps the process's stdin open for SendStdin until CloseStdin;
	// otherwise it reads end-of-file at once.
	Stdin bool
	// PTY runs the process on a pseudo-terminal of this size.
	PTY *Size
}

// Shell is the Command the e2b clients send for commands.run(line): a bash
// login shell running line.
func Shell(line string) Command {
	return Command{Cmd: "/bin/bash", Args: []string{"-l", "-c", line}}
}

// Size is a terminal's size in characters.
type Size struct {
	Cols, Rows uint32
}

// End is how a process ended.
type End struct {
	// Exited is true when the process exited (rather than being killed by
	// a signal); ExitCode is then its exit status.
	Exited   bool
	ExitCode int
	// Status describes the end, e.g. "exit status 3" or "signal: killed".
	Status string
}

// Code is the exit status a shell would report: the exit status, 128+N for
// a process killed by signal N, 1 when the end is not understood.
func (e End) Code() int {
	if e.Exited {
		return e.ExitCode
	}
	name := strings.TrimSuffix(strings.TrimPrefix(e.Status, "signal: "), " (core dumped)")
	for n := syscall.Signal(1); n < 65; n++ {
		if n.String() == name {
			return 128 + int(n)
		}
	}
	return 1
}

// Process is a process started in a sandbox: its output stream and the calls
// that act on it.
type Process struct {
	d      *Daemon
	pid    uint32
	stream *connect.ServerStreamForClient[pb.StartResponse]
}

// Start starts cmd and waits for the daemon to report its pid. The process
// lives as long as ctx (cancelling ctx stops the stream, not the process,
// unless ctx had a deadline, which the daemon enforces by killing it).
func (d *Daemon) Start(ctx context.Context, cmd Command) (*Process, error) {
	cfg := &pb.ProcessConfig{Cmd: cmd.Cmd, Args: cmd.Args, Envs: cmd.Envs}
	if cmd.Cwd != "" {
		cfg.Cwd = &cmd.Cwd
	}
	stdin := cmd.Stdin
	req := &pb.StartRequest{Process: cfg, Stdin: &stdin}
	if cmd.PTY != nil {
		req.Pty = &pb.PTY{Size: &pb.PTY_Size{Cols: cmd.PTY.Cols, Rows: cmd.PTY.Rows}}
	}
	creq := withUser(connect.NewRequest(req), cmd.User)
	creq.Header().Set("Keepalive-Ping-Interval", keepaliveSeconds)
	what := strings.Join(append([]string{cmd.Cmd}, cmd.Args...), " ")
	stream, err := d.proc.Start(ctx, creq)
	if err != nil {
		return nil, d.rpcError(fmt.Sprintf("start %q", what), err)
	}
	for stream.Receive() {
		if st := stream.Msg().GetEvent().GetStart(); st != nil {
			return &Process{d: d, pid: st.GetPid(), stream: stream}, nil
		}
	}
	err = stream.Err()
	_ = stream.Close()
	if err == nil {
		err = errors.New("the stream ended before the process started")
	}
	return nil, d.rpcError(fmt.Sprintf("start %q", what), err)
}

// PID is the process's id in the sandbox.
func (p *Process) PID() uint32 { return p.pid }

// Wait copies the process's output as it comes, stdout (and PTY output) to
// stdout and stderr to stderr, until the process ends, and returns how it
// ended. A stream that stops without an end is an error.
func (p *Process) Wait(stdout, stderr io.Writer) (End, error) {
	defer p.stream.Close()
	for p.stream.Receive() {
		ev := p.stream.Msg().GetEvent()
		if data := ev.GetData(); data != nil {
			var err error
			switch out := data.GetOutput().(type) {
			case *pb.ProcessEvent_DataEvent_Stdout:
				_, err = stdout.Write(out.Stdout)
			case *pb.ProcessEvent_DataEvent_Stderr:
				_, err = stderr.Write(out.Stderr)
			case *pb.ProcessEvent_DataEvent_Pty:
				_, err = stdout.Write(out.Pty)
			}
			if err != nil {
				return End{}, fmt.Errorf("write the output of process %d: %w", p.pid, err)
			}
		}
		if end := ev.GetEnd(); end != nil {
			return End{Exited: end.GetExited(), ExitCode: int(end.GetExitCode()), Status: end.GetStatus()}, nil
		}
	}
	err := p.stream.Err()
	if err == nil {
		err = errors.New("the stream ended without the process's end")
	}
	return End{}, p.d.rpcError(fmt.Sprintf("follow process %d", p.pid), err)
}

// selector names the process in calls about it.
func (p *Process) selector() *pb.ProcessSelector {
	return &pb.ProcessSelector{Selector: &pb.ProcessSelector_Pid{Pid: p.pid}}
}

// SendStdin writes data to the process's stdin (started with Stdin).
func (p *Process) SendStdin(ctx context.Context, data []byte) error {
	_, err := p.d.proc.SendInput(ctx, connect.NewRequest(&pb.SendInputRequest{Process: p.selector(),
		Input: &pb.ProcessInput{Input: &pb.ProcessInput_Stdin{Stdin: data}}}))
	if err != nil {
		return p.d.rpcError(fmt.Sprintf("write to the stdin of process %d", p.pid), err)
	}
	return nil
}

// SendPTY writes data to the process's terminal, as typed keys.
func (p *Process) SendPTY(ctx context.Context, data []byte) error {
	_, err := p.d.proc.SendInput(ctx, connect.NewRequest(&pb.SendInputRequest{Process: p.selector(),
		Input: &pb.ProcessInput{Input: &pb.ProcessInput_Pty{Pty: data}}}))
	if err != nil {
		return p.d.rpcError(fmt.Sprintf("write to the terminal of process %d", p.pid), err)
	}
	return nil
}

// CloseStdin closes the process's stdin: it reads end-of-file.
func (p *Process) CloseStdin(ctx context.Context) error {
	_, err := p.d.proc.CloseStdin(ctx, connect.NewRequest(&pb.CloseStdinRequest{Process: p.selector()}))
	if err != nil {
		return p.d.rpcError(fmt.Sprintf("close the stdin of process %d", p.pid), err)
	}
	return nil
}

// Signal sends SIGTERM (kill false) or SIGKILL (kill true) to the process
// and its process group; the daemon's protocol has no other signal.
func (p *Process) Signal(ctx context.Context, kill bool) error {
	sig := pb.Signal_SIGNAL_SIGTERM
	if kill {
		sig = pb.Signal_SIGNAL_SIGKILL
	}
	_, err := p.d.proc.SendSignal(ctx, connect.NewRequest(&pb.SendSignalRequest{Process: p.selector(), Signal: sig}))
	if err != nil {
		return p.d.rpcError(fmt.Sprintf("signal process %d", p.pid), err)
	}
	return nil
}

// Resize sets the size of the process's terminal.
func (p *Process) Resize(ctx context.Context, size Size) error {
	_, err := p.d.proc.Update(ctx, connect.NewRequest(&pb.UpdateRequest{Process: p.selector(),
		Pty: &pb.PTY{Size: &pb.PTY_Size{Cols: size.Cols, Rows: size.Rows}}}))
	if err != nil {
		return p.d.rpcError(fmt.Sprintf("resize the terminal of process %d", p.pid), err)
	}
	return nil
}

// Close stops following the process (it keeps running).
func (p *Process) Close() error { return p.stream.Close() }
