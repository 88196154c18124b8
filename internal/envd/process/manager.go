package process

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"sync"
	"syscall"

	"connectrpc.com/connect"
	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	pb "lelantos.dev/lelantos/internal/gen/envd/process"
)

// Spawner starts a child and reports its exit status; *reaper.Reaper is one.
// start must start exactly one child and return its pid.
type Spawner interface {
	Start(start func() (int, error)) (int, <-chan syscall.WaitStatus, error)
}

// manager tracks the running processes by pid.
type manager struct {
	spawner Spawner
	// console, when set, receives the output of start commands (WithConsole).
	console io.Writer
	mu      sync.Mutex
	procs   map[uint32]*proc
	seq     uint64
}

func newManager(sp Spawner) *manager {
	return &manager{spawner: sp, procs: map[uint32]*proc{}}
}

// start launches sp and returns it with a subscriber attached before any output
// is read, so the caller sees everything.
func (m *manager) start(sp *spec) (*proc, *subscriber, error) {
	p, exit, err := launch(m.spawner, sp)
	if err != nil {
		return nil, nil, err
	}
	if m.console != nil && sp.tag != nil && *sp.tag == StartCommandTag {
		p.console = m.console
	}
	m.mu.Lock()
	m.seq++
	p.seq = m.seq
	m.procs[p.pid] = p
	m.mu.Unlock()
	sub := p.out.subscribe()
	p.run(exit, func() { m.remove(p) })
	return p, sub, nil
}

// remove forgets p once it has ended.
func (m *manager) remove(p *proc) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.procs[p.pid] == p {
		delete(m.procs, p.pid)
	}
}

// find returns the running process sel names: by pid, or the newest with a tag.
func (m *manager) find(sel *pb.ProcessSelector) (*proc, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch s := sel.GetSelector().(type) {
	case *pb.ProcessSelector_Pid:
		if p, ok := m.procs[s.Pid]; ok {
			return p, nil
		}
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("process with pid %d not found", s.Pid))
	case *pb.ProcessSelector_Tag:
		var best *proc
		for _, p := range m.procs {
			if p.info.Tag != nil && *p.info.Tag == s.Tag && (best == nil || p.seq > best.seq) {
				best = p
			}
		}
		if best == nil {
			return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("process with tag %q not found", s.Tag))
		}
		return best, nil
	}
	return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("process selector needs a pid or a tag"))
}

// list describes the running processes, oldest first.
func (m *manager) list() []*pb.ProcessInfo {
	m.mu.Lock()
	procs := make([]*proc, 0, len(m.procs))
	for _, p := range m.procs {
		procs = append(procs, p)
	}
	m.mu.Unlock()
	slices.SortFunc(procs, func(a, b *proc) int { return int(a.seq) - int(b.seq) })
	out := make([]*pb.ProcessInfo, 0, len(procs))
	for _, p := range procs {
		if !p.hasExited() {
			out = append(out, p.info)
		}
	}
	return out
}

// killAll sends SIGKILL to every running process.
func (m *manager) killAll() {
	m.mu.Lock()
	procs := make([]*proc, 0, len(m.procs))
	for _, p := range m.procs {
		procs = append(procs, p)
	}
	m.mu.Unlock()
	for _, p := range procs {
		_ = p.signal(syscall.SIGKILL)
	}
}

// launch starts the process of sp with its pipes or PTY.
func launch(spawner Spawner, sp *spec) (*proc, <-chan syscall.WaitStatus, error) {
	cmd := &exec.Cmd{Path: sp.path, Args: sp.args, Env: sp.env, Dir: sp.dir, SysProcAttr: &syscall.SysProcAttr{}}
	if os.Geteuid() == 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: sp.user.UID, Gid: sp.user.GID, Groups: sp.user.Groups}
	} else if uint32(os.Geteuid()) != sp.user.UID {
		return nil, nil, connect.NewError(connect.CodePermissionDenied, fmt.Errorf("the daemon is not root and cannot run as %q", sp.user.Name))
	}
	p := &proc{out: newFanout(), done: make(chan struct{}), info: &pb.ProcessInfo{Config: sp.config, Tag: sp.tag}}
	var childEnds []*os.File
	closeAll := func(files ...*os.File) {
		for _, f := range files {
			if f != nil {
				_ = f.Close()
			}
		}
	}
	if sp.pty != nil {
		master, tty, err := openPTY(sp)
		if err != nil {
			return nil, nil, err
		}
		cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
		cmd.SysProcAttr.Setsid, cmd.SysProcAttr.Setctty, cmd.SysProcAttr.Ctty = true, true, 0
		p.ptmx, p.outputs, childEnds = master, []*os.File{master}, []*os.File{tty}
	} else {
		outR, outW, err := os.Pipe()
		if err != nil {
			return nil, nil, fmt.Errorf("create stdout pipe: %w", err)
		}
		errR, errW, err := os.Pipe()
		if err != nil {
			closeAll(outR, outW)
			return nil, nil, fmt.Errorf("create stderr pipe: %w", err)
		}
		cmd.Stdout, cmd.Stderr = outW, errW
		p.outputs, childEnds = []*os.File{outR, errR}, []*os.File{outW, errW}
		if sp.stdin {
			inR, inW, err := os.Pipe()
			if err != nil {
				closeAll(outR, outW, errR, errW)
				return nil, nil, fmt.Errorf("create stdin pipe: %w", err)
			}
			cmd.Stdin, p.stdin = inR, inW
			childEnds = append(childEnds, inR)
		}
		cmd.SysProcAttr.Setpgid = true
	}
	pid, exit, err := spawner.Start(func() (int, error) {
		if err := cmd.Start(); err != nil {
			return 0, err
		}
		return cmd.Process.Pid, nil
	})
	closeAll(childEnds...)
	if err != nil {
		closeAll(p.outputs...)
		closeAll(p.stdin)
		return nil, nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("start %q: %w", sp.path, err))
	}
	p.pid = uint32(pid)
	p.info.Pid = p.pid
	p.release = func() { _ = cmd.Process.Release() }
	return p, exit, nil
}

// openPTY opens a terminal pair sized for sp, with the terminal owned by the
// process's user and the master in non-blocking mode so reads honour deadlines.
func openPTY(sp *spec) (master, tty *os.File, err error) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		return nil, nil, fmt.Errorf("open pty: %w", err)
	}
	defer func() { _ = ptmx.Close() }()
	if err := pty.Setsize(tty, &pty.Winsize{Rows: uint16(sp.pty.GetRows()), Cols: uint16(sp.pty.GetCols())}); err != nil {
		_ = tty.Close()
		return nil, nil, fmt.Errorf("size pty: %w", err)
	}
	if os.Geteuid() == 0 {
		_ = tty.Chown(int(sp.user.UID), int(sp.user.GID))
	}
	fd, err := unix.FcntlInt(ptmx.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		_ = tty.Close()
		return nil, nil, fmt.Errorf("dup pty master: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		_ = tty.Close()
		return nil, nil, fmt.Errorf("pty master non-blocking: %w", err)
	}
	return os.NewFile(uintptr(fd), "/dev/ptmx"), tty, nil
}
