// Package reaper owns the reaping of child processes. When the daemon is the
// sandbox's init (PID 1) every orphan in the sandbox becomes its child; the
// Reaper collects them all with wait4(-1) on SIGCHLD and hands the exit status of
// the processes the daemon started to whoever started them. Nothing else in the
// daemon may wait for children: mixing exec.Cmd.Wait with wait4(-1) races.
package reaper

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// sweepInterval is how often the Reaper also sweeps without a SIGCHLD, as a
// safety net against a lost signal.
const sweepInterval = 2 * time.Second

// Reaper collects every exited child of the process. The zero value is not
// usable; call New and then Run.
type Reaper struct {
	mu      sync.Mutex
	waiting map[int]chan syscall.WaitStatus
	orphans atomic.Uint64
	wake    chan os.Signal
}

// New returns a Reaper that listens for SIGCHLD. Run must be called for it to
// reap.
func New() *Reaper {
	r := &Reaper{waiting: map[int]chan syscall.WaitStatus{}, wake: make(chan os.Signal, 1)}
	signal.Notify(r.wake, syscall.SIGCHLD)
	return r
}

// Run reaps children until ctx ends.
func (r *Reaper) Run(ctx context.Context) {
	defer signal.Stop(r.wake)
	tick := time.NewTicker(sweepInterval)
	defer tick.Stop()
	for {
		r.sweep()
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		case <-tick.C:
		}
	}
}

// sweep reaps every child that has exited.
func (r *Reaper) sweep() {
	for {
		var ws syscall.WaitStatus
		r.mu.Lock()
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if errors.Is(err, syscall.EINTR) {
			r.mu.Unlock()
			continue
		}
		if err != nil || pid <= 0 {
			r.mu.Unlock()
			return
		}
		ch := r.waiting[pid]
		delete(r.waiting, pid)
		r.mu.Unlock()
		if ch == nil {
			r.orphans.Add(1)
			continue
		}
		ch <- ws
	}
}

// Start runs start, which must start exactly one child and return its pid, and
// registers that pid so its exit status arrives on the returned channel (which
// receives once). No child can be reaped while start runs, so a child that
// exits at once is still reported.
func (r *Reaper) Start(start func() (int, error)) (int, <-chan syscall.WaitStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pid, err := start()
	if err != nil {
		return 0, nil, err
	}
	if pid <= 0 {
		return 0, nil, fmt.Errorf("register child: invalid pid %d", pid)
	}
	ch := make(chan syscall.WaitStatus, 1)
	r.waiting[pid] = ch
	select {
	case r.wake <- syscall.SIGCHLD:
	default:
	}
	return pid, ch, nil
}

// Orphans returns how many children were reaped that nobody registered.
func (r *Reaper) Orphans() uint64 { return r.orphans.Load() }

// BecomeSubreaper marks the calling process as a child subreaper, so orphans of
// its descendants are reparented to it (and reaped by a Reaper) even when it is
// not PID 1.
func BecomeSubreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("become child subreaper: %w", err)
	}
	return nil
}
