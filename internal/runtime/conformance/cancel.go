package conformance

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/runtime"
)

// testCanceledStart: a start whose context ends at any point of the launch
// either starts the sandbox or leaves nothing of it running. A runtime's command
// line killed half-way through a create leaves processes that no state names,
// where neither Kill nor a node's reconcile ever finds them.
func testCanceledStart(t *testing.T, h *Harness, rt runtime.Runtime) {
	delays := []time.Duration{0, 10 * time.Millisecond, 40 * time.Millisecond, 100 * time.Millisecond,
		200 * time.Millisecond, 400 * time.Millisecond}
	for _, d := range delays {
		t.Run(d.String(), func(t *testing.T) {
			id := newID(t, "")
			cfg, _ := h.config(t, rt, id)
			ctx, cancel := context.WithCancel(context.Background())
			if d == 0 {
				cancel()
			} else {
				time.AfterFunc(d, cancel)
			}
			err := rt.Start(ctx, id, cfg)
			cancel()
			if err == nil {
				if err := rt.Kill(context.Background(), id); err != nil {
					t.Fatalf("kill a sandbox started before its context ended: %v", err)
				}
			}
			if left := AwaitNoProcesses(id, 10*time.Second); len(left) > 0 {
				t.Fatalf("start canceled after %s (err %v) left processes running: %s", d, err, strings.Join(left, "; "))
			}
			infos, lerr := rt.List(context.Background())
			if lerr != nil {
				t.Fatalf("list: %v", lerr)
			}
			for _, i := range infos {
				if i.ID == id {
					t.Fatalf("start canceled after %s (err %v): the runtime still lists the sandbox", d, err)
				}
			}
		})
	}
}

// AwaitNoProcesses waits up to within for the host to have no process that
// names s in its command line or sits in a cgroup whose path holds s (a
// sandbox id, or a node's data directory), and describes those still there
// when it gives up. Killing is asynchronous in the kernel: a process killed
// just before takes a moment to go.
func AwaitNoProcesses(s string, within time.Duration) []string {
	deadline := time.Now().Add(within)
	for {
		left := processesNaming(s)
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// processesNaming describes the host's processes that name s in their command
// line or in their cgroup paths.
func processesNaming(s string) []string {
	pids, _ := filepath.Glob("/proc/[0-9]*")
	var found []string
	for _, p := range pids {
		cmd, err := os.ReadFile(filepath.Join(p, "cmdline"))
		if err != nil {
			continue
		}
		cg, _ := os.ReadFile(filepath.Join(p, "cgroup"))
		args := strings.ReplaceAll(string(cmd), "\x00", " ")
		if strings.Contains(args, s) || strings.Contains(string(cg), s) {
			found = append(found, filepath.Base(p)+" "+args[:min(len(args), 160)])
		}
	}
	return found
}
