package process

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/sys/unix"

	pb "lelantos.dev/lelantos/internal/gen/envd/process"
)

// Output reading. After the process exits its pipes are drained until they stay
// idle for drainIdle (a background child may keep them open) or up to
// drainLimit more bytes.
const (
	chunkSize  = 32 << 10
	drainIdle  = 250 * time.Millisecond
	drainLimit = 1 << 20
	writeLimit = 30 * time.Second
)

// errNotRunning reports input or a resize for a process that cannot take it.
var errNotRunning = errors.New("process is not accepting input")

// outputKind says which DataEvent field a stream fills.
type outputKind int

const (
	stdoutKind outputKind = iota
	stderrKind
	ptyKind
)

// proc is one started process and its I/O.
type proc struct {
	pid  uint32
	seq  uint64
	info *pb.ProcessInfo
	out  *fanout

	ptmx    *os.File
	outputs []*os.File
	inMu    sync.Mutex
	stdin   *os.File
	release func()
	// console, when set, gets a copy of every output chunk (start commands).
	console io.Writer

	mu     sync.Mutex
	exited bool
	timer  *time.Timer

	readers sync.WaitGroup
	done    chan struct{}
}

// run starts reading the process's output and waits for its exit status on
// exit; onEnd runs after the end event is published.
func (p *proc) run(exit <-chan syscall.WaitStatus, onEnd func()) {
	for i, f := range p.outputs {
		kind := outputKind(i)
		if p.ptmx != nil {
			kind = ptyKind
		}
		p.readers.Add(1)
		go p.pump(f, kind)
	}
	go func() {
		ws := <-exit
		p.mu.Lock()
		p.exited = true
		if p.timer != nil {
			p.timer.Stop()
		}
		p.mu.Unlock()
		for _, f := range p.outputs {
			_ = f.SetReadDeadline(time.Now().Add(drainIdle))
		}
		p.readers.Wait()
		for _, f := range p.outputs {
			_ = f.Close()
		}
		p.inMu.Lock()
		if p.stdin != nil {
			_ = p.stdin.Close()
			p.stdin = nil
		}
		p.inMu.Unlock()
		if p.release != nil {
			p.release()
		}
		p.out.finish(&pb.ProcessEvent{Event: &pb.ProcessEvent_End{End: endEvent(ws)}})
		close(p.done)
		onEnd()
	}()
}

// hasExited reports whether the process has been reaped.
func (p *proc) hasExited() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exited
}

// pump publishes what f yields until EOF, or until it idles after the exit.
func (p *proc) pump(f *os.File, kind outputKind) {
	defer p.readers.Done()
	buf := make([]byte, chunkSize)
	afterExit := 0
	for {
		n, err := f.Read(buf)
		if n > 0 {
			p.out.publish(dataEvent(kind, bytes.Clone(buf[:n])), n)
			if p.console != nil {
				_, _ = p.console.Write(buf[:n])
			}
			if p.hasExited() {
				afterExit += n
				if afterExit > drainLimit {
					return
				}
				_ = f.SetReadDeadline(time.Now().Add(drainIdle))
			}
		}
		if err != nil {
			return
		}
	}
}

// dataEvent wraps output bytes in the event for kind.
func dataEvent(kind outputKind, data []byte) *pb.ProcessEvent {
	d := &pb.ProcessEvent_DataEvent{}
	switch kind {
	case stdoutKind:
		d.Output = &pb.ProcessEvent_DataEvent_Stdout{Stdout: data}
	case stderrKind:
		d.Output = &pb.ProcessEvent_DataEvent_Stderr{Stderr: data}
	default:
		d.Output = &pb.ProcessEvent_DataEvent_Pty{Pty: data}
	}
	return &pb.ProcessEvent{Event: &pb.ProcessEvent_Data{Data: d}}
}

// endEvent describes an exit status the way Go's ProcessState does.
func endEvent(ws syscall.WaitStatus) *pb.ProcessEvent_EndEvent {
	e := &pb.ProcessEvent_EndEvent{}
	switch {
	case ws.Exited():
		e.Exited = true
		e.ExitCode = int32(ws.ExitStatus())
		e.Status = fmt.Sprintf("exit status %d", ws.ExitStatus())
	case ws.Signaled():
		e.ExitCode = -1
		e.Status = "signal: " + ws.Signal().String()
		if ws.CoreDump() {
			e.Status += " (core dumped)"
		}
	default:
		e.ExitCode = -1
		e.Status = fmt.Sprintf("unknown wait status %#x", uint32(ws))
	}
	if !e.Exited || e.ExitCode != 0 {
		msg := e.Status
		e.Error = &msg
	}
	return e
}

// signal delivers sig to the process's group (it leads one), or to the process
// alone when the group is gone. A process that already exited is left alone.
func (p *proc) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited {
		return nil
	}
	if err := syscall.Kill(-int(p.pid), sig); err == nil {
		return nil
	}
	if err := syscall.Kill(int(p.pid), sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal process %d: %w", p.pid, err)
	}
	return nil
}

// killAt kills the process (with its group) when deadline passes.
func (p *proc) killAt(deadline time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited || p.timer != nil {
		return
	}
	p.timer = time.AfterFunc(time.Until(deadline), func() { _ = p.signal(syscall.SIGKILL) })
}

// writeInput writes data to the PTY (pty set) or to stdin.
func (p *proc) writeInput(ctx context.Context, data []byte, pty bool) error {
	p.inMu.Lock()
	defer p.inMu.Unlock()
	var f *os.File
	switch {
	case pty && p.ptmx == nil:
		return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("process %d has no PTY", p.pid))
	case pty:
		f = p.ptmx
	case p.ptmx != nil:
		return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("process %d runs in a PTY: send PTY input", p.pid))
	case p.stdin == nil:
		return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("stdin of process %d is not open", p.pid))
	default:
		f = p.stdin
	}
	if p.hasExited() {
		return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("process %d: %w", p.pid, errNotRunning))
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(writeLimit)
	}
	_ = f.SetWriteDeadline(deadline)
	if _, err := f.Write(data); err != nil {
		if errors.Is(err, syscall.EPIPE) || errors.Is(err, os.ErrClosed) {
			return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("write input to process %d: %w", p.pid, err))
		}
		return fmt.Errorf("write input to process %d: %w", p.pid, err)
	}
	return nil
}

// closeStdin closes stdin (EOF for the process); closing twice is fine.
func (p *proc) closeStdin() error {
	p.inMu.Lock()
	defer p.inMu.Unlock()
	if p.ptmx != nil {
		return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("process %d runs in a PTY: send EOF (Ctrl-D) as PTY input", p.pid))
	}
	if p.stdin == nil {
		return nil
	}
	err := p.stdin.Close()
	p.stdin = nil
	if err != nil {
		return fmt.Errorf("close stdin of process %d: %w", p.pid, err)
	}
	return nil
}

// resize sets the PTY's window size.
func (p *proc) resize(size *pb.PTY_Size) error {
	if p.ptmx == nil {
		return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("process %d has no PTY", p.pid))
	}
	if size.GetCols() > 0xffff || size.GetRows() > 0xffff {
		return connect.NewError(connect.CodeInvalidArgument, errors.New("pty size out of range"))
	}
	return setWinsize(p.ptmx, size)
}

// setWinsize applies size to a terminal without switching f to blocking mode.
func setWinsize(f *os.File, size *pb.PTY_Size) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("resize pty: %w", err)
	}
	ws := &unix.Winsize{Row: uint16(size.GetRows()), Col: uint16(size.GetCols())}
	var ioErr error
	if err := rc.Control(func(fd uintptr) { ioErr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, ws) }); err != nil {
		return fmt.Errorf("resize pty: %w", err)
	}
	if ioErr != nil {
		return fmt.Errorf("resize pty: %w", ioErr)
	}
	return nil
}
