package gvisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// A sandbox's process exits with its first process's status (runsc passes it on),
// but the node is not that process's parent: runsc forks it and exits. A pidfd
// opened while the process runs says when it exits and, once it is reaped by
// whoever inherited it, with which status (PIDFD_INFO_EXIT, Linux 6.15). Until the
// reaping, the zombie's /proc/<pid>/stat holds the same status.

// pidWatch is a pidfd on a sandbox's process. refs counts its users (the
// Runtime's map and each Wait, under Runtime.mu): it is closed by the last, so that
// no Wait ever polls a descriptor number reused for another file.
type pidWatch struct {
	pid, fd int
	refs    int
}

// watchPid opens a pidfd on pid.
func watchPid(pid int) (*pidWatch, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, fmt.Errorf("watch pid %d: %w", pid, err)
	}
	return &pidWatch{pid: pid, fd: fd}, nil
}

func (w *pidWatch) close() { _ = unix.Close(w.fd) }

// wait blocks until the process has exited, then returns its exit code as a shell
// reports it (128+n for a signal n), or -1 when it cannot be learned.
func (w *pidWatch) wait(ctx context.Context) (int, error) {
	for {
		fds := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 200)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return -1, fmt.Errorf("watch pid %d: %w", w.pid, err)
		}
		if n > 0 {
			break
		}
		if err := ctx.Err(); err != nil {
			return -1, err
		}
	}
	// Exited; the status is the zombie's until it is reaped, then the pidfd's. A
	// reaper may take seconds.
	deadline := time.Now().Add(10 * time.Second)
	for {
		zombie, zerr := zombieStatus(w.pid)
		info := unix.PidfdInfo{Mask: unix.PIDFD_INFO_EXIT}
		if err := unix.IoctlPidfdInfo(w.fd, &info); err != nil {
			return -1, nil // a kernel without PIDFD_GET_INFO: unknown
		}
		if info.Mask&unix.PIDFD_INFO_EXIT != 0 {
			return shellCode(unix.WaitStatus(info.Exit_code)), nil
		}
		// Not reaped yet, so the pid is still the zombie's and what was read is its.
		if zerr == nil {
			return shellCode(zombie), nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return -1, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// zombieStatus reads the exit status of the zombie pid from /proc/<pid>/stat.
func zombieStatus(pid int) (unix.WaitStatus, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The fields after the command (which may hold spaces) start with the state, the
	// third field; the exit code is the 52nd.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("bad stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 50 || f[0] != "Z" {
		return 0, errors.New("not a zombie")
	}
	code, err := strconv.Atoi(f[49])
	if err != nil {
		return 0, err
	}
	return unix.WaitStatus(code), nil
}

func shellCode(ws unix.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	}
	return -1
}

// watch opens a pidfd on sandbox id's process.
func (r *Runtime) watch(ctx context.Context, id string) error {
	st, err := r.cli.State(ctx, id)
	if err != nil {
		return err
	}
	if st.Pid <= 0 {
		return fmt.Errorf("sandbox %s has no process (%s)", id, st.Status)
	}
	w, err := watchPid(st.Pid)
	if err != nil {
		return err
	}
	w.refs = 1 // the map's
	r.mu.Lock()
	defer r.mu.Unlock()
	if old := r.watches[id]; old != nil {
		r.releaseLocked(old)
	}
	r.watches[id] = w
	return nil
}

// unwatch drops sandbox id's pidfd; it is closed once no Wait uses it.
func (r *Runtime) unwatch(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if w := r.watches[id]; w != nil {
		delete(r.watches, id)
		r.releaseLocked(w)
	}
}

// acquire returns sandbox id's pidfd for one Wait, nil when there is none.
func (r *Runtime) acquire(id string) *pidWatch {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.watches[id]
	if w != nil {
		w.refs++
	}
	return w
}

func (r *Runtime) release(w *pidWatch) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.releaseLocked(w)
}

func (r *Runtime) releaseLocked(w *pidWatch) {
	if w.refs--; w.refs == 0 {
		w.close()
	}
}
