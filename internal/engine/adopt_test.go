package engine_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/engine"
	"lelantos.dev/lelantos/internal/engine/enginetest"
)

// TestRestartAdoption: a restarted node finds each sandbox as it left it, or learns
// what happened to it while the node was down.
func TestRestartAdoption(t *testing.T) {
	node := enginetest.NewNode(t, "10.232.7.0/24")
	e1 := node.Engine(t)
	ctx := context.Background()
	rt := node.Runtimes["gvisor"]
	// runtimePid returns the host pid of a sandbox in its runtime, 0 if it holds none.
	runtimePid := func(id string) int {
		infos, err := rt.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range infos {
			if i.ID == id {
				return i.Pid
			}
		}
		return 0
	}
	tests := []struct {
		id    string
		pause bool
		// down runs while no engine runs.
		down       func(t *testing.T, dir string)
		wantState  engine.State // "" means the sandbox is gone
		wantReason string
		// after checks the adopted sandbox.
		after func(t *testing.T, e *engine.Engine, st engine.Status)
	}{
		{id: "stillrunning", wantState: engine.StateRunning, after: func(t *testing.T, e *engine.Engine, st engine.Status) {
			waitCounter(t, st, mustInt(t, st, readCounter)+2)
		}},
		{id: "diedwhiledown", down: func(t *testing.T, dir string) {
			pid := runtimePid("diedwhiledown")
			if pid == 0 {
				t.Fatal("no runtime pid")
			}
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}, wantState: engine.StateDead, wantReason: "no longer running"},
		{id: "stillpaused", pause: true, wantState: engine.StatePaused, after: func(t *testing.T, e *engine.Engine, st engine.Status) {
			st, err := e.Resume(ctx, st.Spec.ID)
			if err != nil {
				t.Fatalf("resume after restart: %v", err)
			}
			if got := must(t, st, "cat /root/mark"); got != st.Spec.ID {
				t.Errorf("file after restart and resume: %q", got)
			}
			waitCounter(t, st, 3)
		}},
		{id: "lostimage", pause: true, down: func(t *testing.T, dir string) {
			if err := os.RemoveAll(filepath.Join(dir, "images")); err != nil {
				t.Fatal(err)
			}
		}, wantState: engine.StateDead, wantReason: "saved state was lost"},
		{id: "norecord", down: func(t *testing.T, dir string) {
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		st := create(t, e1, newSpec(t, tc.id))
		must(t, st, "echo "+tc.id+" > /root/mark; "+counterCmd)
		if tc.pause {
			if _, err := e1.Pause(ctx, tc.id); err != nil {
				t.Fatal(err)
			}
		}
	}
	e1.Close()
	for _, tc := range tests {
		if tc.down != nil {
			tc.down(t, filepath.Join(node.DataDir, "sandboxes", tc.id))
		}
	}
	time.Sleep(200 * time.Millisecond) // let the killed sandbox's processes go
	start := time.Now()
	e2 := node.Engine(t)
	t.Logf("restart with %d sandboxes: %v", len(tests), time.Since(start).Round(time.Millisecond))

	for _, tc := range tests {
		t.Run(tc.id, func(t *testing.T) {
			st, err := e2.Get(tc.id)
			if tc.wantState == "" {
				if !errors.Is(err, engine.ErrNotFound) {
					t.Fatalf("a sandbox without a record: %+v, %v; want it gone", st, err)
				}
				if pid := runtimePid(tc.id); pid != 0 {
					t.Errorf("the runtime still runs it (pid %d)", pid)
				}
				if _, ok := node.Network.Get(tc.id); ok {
					t.Error("its network is still there")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if st.State != tc.wantState || !strings.Contains(st.Reason, tc.wantReason) {
				t.Fatalf("adopted as %s (%q), want %s (%q)", st.State, st.Reason, tc.wantState, tc.wantReason)
			}
			if tc.wantState == engine.StateDead {
				lines, err := e2.Logs(tc.id, time.Time{}, 0)
				if err != nil || countLines(lines, tc.wantReason) == 0 {
					t.Errorf("the log does not say %q: %+v %v", tc.wantReason, lines, err)
				}
				if pid := runtimePid(tc.id); pid != 0 {
					t.Errorf("the runtime still holds the dead sandbox (pid %d)", pid)
				}
			}
			if tc.after != nil {
				tc.after(t, e2, st)
			}
			if err := e2.Kill(ctx, tc.id); err != nil {
				t.Errorf("kill: %v", err)
			}
		})
	}
	if infos, _ := rt.List(ctx); len(infos) != 0 {
		t.Errorf("runtime sandboxes left: %+v", infos)
	}
	if eps := node.Network.List(); len(eps) != 0 {
		t.Errorf("networks left: %+v", eps)
	}
	if ents, _ := os.ReadDir(filepath.Join(node.DataDir, "sandboxes")); len(ents) != 0 {
		t.Errorf("sandbox directories left: %v", ents)
	}
}
