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
			// Killing is asynchronous in the kernel: give the processes a moment.
			deadline := time.Now().Add(10 * time.Second)
			for {
				left := processesOf(id)
				if len(left) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("start canceled after %s (err %v) left processes running: %s", d, err, strings.Join(left, "; "))
				}
				time.Sleep(50 * time.Millisecond)
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

// processesOf describes the host's processes that name sandbox id in their
// command line or sit in one of its cgroups.
func processesOf(id string) []string {
	pids, _ := filepath.Glob("/proc/[0-9]*")
	var found []string
	for _, p := range pids {
		cmd, err := os.ReadFile(filepath.Join(p, "cmdline"))
		if err != nil {
			continue
		}
		cg, _ := os.ReadFile(filepath.Join(p, "cgroup"))
		args := strings.ReplaceAll(string(cmd), "\x00", " ")
		if strings.Contains(args, id) || strings.Contains(string(cg), id) {
			found = append(found, filepath.Base(p)+" "+args)
		}
	}
	return found
}
