// Package ocicli drives an OCI runtime's command line (runsc and runc share it):
// state, list, pause, resume, kill and delete, and waiting for a sandbox to end.
package ocicli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"lelantos.dev/lelantos/internal/runtime"
	"lelantos.dev/lelantos/internal/runtime/cgroups"
	"lelantos.dev/lelantos/internal/runtime/oci"
)

// CLI is one OCI runtime binary with its state directory.
type CLI struct {
	// Binary is the runtime's path; Root its --root state directory.
	Binary string
	Root   string
	// Cgroups is the host's layout, for OOM counts.
	Cgroups cgroups.Hierarchy
}

// State is the part of the runtime's state output this package reads.
type State struct {
	ID     string `json:"id"`
	Pid    int    `json:"pid"`
	Status string `json:"status"`
	Bundle string `json:"bundle"`
}

// Run runs one command with the state directory and returns its stdout.
func (c CLI) Run(ctx context.Context, args ...string) ([]byte, error) {
	full := append([]string{"--root=" + c.Root}, args...)
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, c.Binary, full...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %w: %s", c.name(), args[0], err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

func (c CLI) name() string {
	if i := strings.LastIndexByte(c.Binary, '/'); i >= 0 {
		return c.Binary[i+1:]
	}
	return c.Binary
}

// State returns the state of sandbox id, or runtime.ErrNotFound.
func (c CLI) State(ctx context.Context, id string) (State, error) {
	out, err := c.Run(ctx, "state", id)
	if err != nil {
		if msg := err.Error(); strings.Contains(msg, "does not exist") || strings.Contains(msg, "not found") {
			return State{}, runtime.ErrNotFound
		}
		return State{}, err
	}
	var st State
	if err := json.Unmarshal(out, &st); err != nil {
		return st, fmt.Errorf("%s state: %w", c.name(), err)
	}
	return st, nil
}

// List returns every sandbox in the state directory.
func (c CLI) List(ctx context.Context) ([]runtime.Info, error) {
	out, err := c.Run(ctx, "list", "--format=json")
	if err != nil {
		return nil, fmt.Errorf("list sandboxes: %w", err)
	}
	var states []State
	if s := strings.TrimSpace(string(out)); s != "" && s != "null" {
		if err := json.Unmarshal(out, &states); err != nil {
			return nil, fmt.Errorf("list sandboxes: %w", err)
		}
	}
	infos := make([]runtime.Info, 0, len(states))
	for _, s := range states {
		infos = append(infos, runtime.Info{ID: s.ID, Status: StatusOf(s.Status), Pid: s.Pid})
	}
	return infos, nil
}

// StatusOf maps an OCI status to the runtime's.
func StatusOf(s string) runtime.Status {
	switch s {
	case "running", "created":
		return runtime.StatusRunning
	case "paused":
		return runtime.StatusFrozen
	}
	return runtime.StatusStopped
}

// ForceDelete kills and deletes id, ignoring errors: it is the cleanup path.
func (c CLI) ForceDelete(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _ = c.Run(ctx, "kill", "--all", id, "KILL")
	_, _ = c.Run(ctx, "delete", "--force", id)
}

// Wait blocks until sandbox id has exited, then says how it ended.
func (c CLI) Wait(ctx context.Context, id string) (runtime.Exit, error) {
	st, err := c.State(ctx, id)
	if err != nil {
		return runtime.Exit{}, fmt.Errorf("wait for sandbox %s: %w", id, err)
	}
	if st.Status != "stopped" && st.Pid > 0 {
		if err := runtime.WaitPid(ctx, st.Pid); err != nil {
			return runtime.Exit{}, fmt.Errorf("wait for sandbox %s: %w", id, err)
		}
	}
	exit := runtime.Exit{Code: -1, Reason: "exited"}
	if n, err := c.Cgroups.OOMKills(oci.CgroupPath(id)); err == nil && n > 0 {
		exit.OOMKilled = true
		exit.Reason = "out of memory: the sandbox used more than its memory limit"
	}
	return exit, nil
}

// Stats samples sandbox id's cgroup.
func (c CLI) Stats(id string) (runtime.Stats, error) {
	s, err := c.Cgroups.Stats(oci.CgroupPath(id))
	if err != nil {
		return s, fmt.Errorf("stats of sandbox %s: %w", id, err)
	}
	return s, nil
}

// SetCPUWeight sets the CPU weight of sandbox id's cgroup (runtime.Config.CPUWeight).
func (c CLI) SetCPUWeight(id string, weight uint64) error {
	if err := c.Cgroups.SetCPUShares(oci.CgroupPath(id), weight); err != nil {
		return fmt.Errorf("set the cpu weight of sandbox %s: %w", id, err)
	}
	return nil
}

// StepTimeout bounds one launch step of an OCI runtime's command line (create,
// start, restore, run).
const StepTimeout = 2 * time.Minute

// StepContext is the context for one launch step: ctx's values but not its
// cancellation, and at most StepTimeout. A runtime killed part-way through
// creating a sandbox can leave the sandbox's processes running with no state
// that names them, where no kill or delete finds them; so a step always runs to
// its end, and the caller checks ctx between steps and removes what the steps
// made.
func StepContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), StepTimeout)
}
