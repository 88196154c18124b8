package gvisor

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"lelantos.dev/lelantos/internal/runtime/oci"
)

// pidOf is the host pid of sandbox id's process: the watched one's, else what
// runsc state says.
func (r *Runtime) pidOf(ctx context.Context, id string) (int, error) {
	r.mu.Lock()
	w := r.watches[id]
	r.mu.Unlock()
	if w != nil {
		return w.pid, nil
	}
	st, err := r.cli.State(ctx, id)
	if err != nil {
		return 0, err
	}
	return st.Pid, nil
}

// watchFrom watches sandbox id's process by the pid runsc wrote to pidFile, or,
// without one, by what runsc state says.
func (r *Runtime) watchFrom(ctx context.Context, id, pidFile string) error {
	b, err := os.ReadFile(pidFile)
	pid, perr := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || perr != nil || pid <= 0 {
		return r.watch(ctx, id)
	}
	w, err := watchPid(pid)
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

// cleanupLater removes checkpointed sandbox id's runsc state and cgroup in the
// background.
func (r *Runtime) cleanupLater(id string) {
	done := make(chan struct{})
	r.mu.Lock()
	if r.cleaning[id] != nil { // one is under way already
		r.mu.Unlock()
		return
	}
	r.cleaning[id] = done
	r.mu.Unlock()
	go func() {
		defer close(done)
		r.cli.ForceDelete(id)
		_ = r.cg.Remove(oci.CgroupPath(id))
		r.mu.Lock()
		delete(r.cleaning, id)
		r.mu.Unlock()
	}()
}

// awaitCleanup waits until no removal of sandbox id's state is under way.
func (r *Runtime) awaitCleanup(ctx context.Context, id string) error {
	r.mu.Lock()
	done := r.cleaning[id]
	r.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for the removal of the checkpointed sandbox's state: %w", ctx.Err())
	}
}
