package engine_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/engine"
	"lelantos.dev/lelantos/internal/engine/enginetest"
)

// TestLimits: memory, tasks, disk and CPU limits hold, and going over them harms at
// worst the sandbox that did, never its neighbour or the host.
func TestLimits(t *testing.T) {
	node := enginetest.NewNode(t, "10.232.5.0/24")
	e := node.Engine(t)
	ctx := context.Background()
	neighbour := create(t, e, newSpec(t, "neighbour"))
	must(t, neighbour, counterCmd)
	waitCounter(t, neighbour, 1)
	// neighbourFine checks the neighbour still runs and answers promptly.
	neighbourFine := func(t *testing.T) {
		t.Helper()
		start := time.Now()
		n := mustInt(t, neighbour, readCounter)
		waitCounter(t, neighbour, n+2)
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("the neighbour took %v to answer and count", d)
		}
	}

	tests := []struct {
		name, id string
		check    func(t *testing.T, s engine.Spec)
	}{
		{"memory in the sandbox's kernel", "kernelhog", func(t *testing.T, s engine.Spec) {
			// Data in an in-memory file lives in gVisor's own memory: the host kills
			// the whole sandbox, and the engine must say why it ended.
			hog := create(t, e, s)
			go sh(ctx, hog.Address, hog.Spec.AccessToken, `python3 -c "
import os
fd = os.memfd_create('hog')
while True:
    os.write(fd, b'x' * (16 << 20))"`)
			st := waitState(t, e, s.ID, engine.StateDead, 60*time.Second)
			if !strings.Contains(st.Reason, "out of memory") {
				t.Errorf("the hog died with reason %q, want out of memory", st.Reason)
			}
			lines, err := e.Logs(s.ID, time.Time{}, 0)
			if err != nil {
				t.Fatal(err)
			}
			if countLines(lines, "out of memory") == 0 {
				t.Errorf("the hog's log does not say it ran out of memory: %+v", lines)
			}
			neighbourFine(t)
			if err := e.Kill(ctx, s.ID); err != nil {
				t.Errorf("kill the dead hog: %v", err)
			}
		}},
		{"memory in a process", "processhog", func(t *testing.T, s engine.Spec) {
			// A process's own memory: the host's OOM killer picks that process's
			// address space and the sandbox runs on, as under Linux. It must not get
			// far past the sandbox's size either way.
			hog := create(t, e, s)
			r, err := sh(ctx, hog.Address, hog.Spec.AccessToken, `python3 -c "
blocks = []
while True:
    blocks.append(b'x' * (16 << 20))
    print(len(blocks) * 16, flush=True)" > /tmp/hog.out 2>&1; echo "exit=$? peak=$(tail -1 /tmp/hog.out)"`)
			st, gerr := e.Get(s.ID)
			if gerr != nil {
				t.Fatal(gerr)
			}
			t.Logf("hog: %+v, %v; sandbox %s %q", r, err, st.State, st.Reason)
			switch st.State {
			case engine.StateRunning:
				var code, peak int
				lines := strings.Split(r.Out, "\n")
				if _, serr := fmt.Sscanf(lines[len(lines)-1], "exit=%d peak=%d", &code, &peak); err != nil || serr != nil || code == 0 {
					t.Fatalf("the hog was not stopped: %+v %v", r, err)
				}
				if peak == 0 || peak > 2*s.MemoryMB {
					t.Errorf("the hog got to %d MB in a %d MB sandbox", peak, s.MemoryMB)
				}
				must(t, hog, "echo still usable")
				// The sandbox lives on, but its log says why the process died.
				deadline := time.Now().Add(5 * time.Second)
				for {
					lines, lerr := e.Logs(s.ID, time.Time{}, 0)
					if lerr == nil && countLines(lines, "out of memory") > 0 {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("the log does not report the OOM kill: %+v %v", lines, lerr)
					}
					time.Sleep(200 * time.Millisecond)
				}
			case engine.StateDead:
				if !strings.Contains(st.Reason, "out of memory") {
					t.Errorf("the hog's sandbox died with reason %q, want out of memory", st.Reason)
				}
			default:
				t.Errorf("the hog's sandbox is %s", st.State)
			}
			neighbourFine(t)
		}},
		{"fork bomb", "forkbomb", func(t *testing.T, s engine.Spec) {
			// hostProcs counts the host processes of the node's sandboxes named
			// like the bomb's, and of the node's runtimes.
			hostProcs := func() int { return len(node.HostState(t, s.ID).Processes) }
			before := hostProcs()
			bomb := create(t, e, s)
			must(t, bomb, `nohup bash -c 'f() { f | f & }; f' >/dev/null 2>&1 &`)
			time.Sleep(5 * time.Second)
			neighbourFine(t)
			// Under systrap every address space has a host stub process; the
			// sandbox's pids limit (4096) bounds them.
			if during := hostProcs(); during > before+4096 {
				t.Errorf("the bomb's sandbox has %d host processes", during-before)
			}
			st, err := e.Get(s.ID)
			t.Logf("after 5 s of fork bomb the sandbox is %s (%s), %v", st.State, st.Reason, err)
			start := time.Now()
			if err := e.Kill(ctx, s.ID); err != nil {
				t.Fatalf("kill the bomb: %v", err)
			}
			t.Logf("killed in %v", time.Since(start).Round(time.Millisecond))
			if after := hostProcs(); after > before {
				t.Errorf("after the kill %d host processes of the bomb's sandbox are left", after-before)
			}
			neighbourFine(t)
		}},
		{"disk", "diskfill", func(t *testing.T, s engine.Spec) {
			disk := create(t, e, s)
			r, err := sh(ctx, disk.Address, disk.Spec.AccessToken, "dd if=/dev/zero of=/big bs=1M count=400")
			if err != nil {
				t.Fatal(err)
			}
			if r.Code == 0 || !strings.Contains(r.Out, "No space left on device") {
				t.Fatalf("writing 400 MB to a %d MB disk: exit %d: %s", s.DiskSizeMB, r.Code, r.Out)
			}
			must(t, disk, "rm /big; echo still-usable > /root/after")
			if got := must(t, disk, "cat /root/after"); got != "still-usable" {
				t.Errorf("after freeing the disk: %q", got)
			}
		}},
		{"cpu", "cpuspin", func(t *testing.T, s engine.Spec) {
			spin := create(t, e, s)
			rt := node.Runtimes["gvisor"]
			must(t, spin, `for i in 1 2 3 4; do nohup timeout 4 bash -c 'while :; do :; done' >/dev/null 2>&1 & done`)
			time.Sleep(500 * time.Millisecond)
			first, err := rt.Stats(ctx, s.ID)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.Metrics(ctx, s.ID); err != nil { // primes the engine's CPU sample
				t.Fatal(err)
			}
			time.Sleep(2 * time.Second)
			last, err := rt.Stats(ctx, s.ID)
			if err != nil {
				t.Fatal(err)
			}
			m, err := e.Metrics(ctx, s.ID)
			if err != nil {
				t.Fatal(err)
			}
			used := float64(last.CPUNanos-first.CPUNanos) / float64(last.Time.Sub(first.Time).Nanoseconds())
			t.Logf("4 busy threads in a 1-CPU sandbox: %.2f CPU-seconds per second; engine metrics %.0f%%", used, m.CPUUsedPct)
			if used > 1.2 {
				t.Errorf("a 1-CPU sandbox used %.2f CPU-seconds per second", used)
			}
			if used < 0.2 || m.CPUUsedPct < 20 {
				t.Errorf("control: the spinning sandbox used only %.2f CPU-s/s (metrics %.0f%%)", used, m.CPUUsedPct)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.check(t, newSpec(t, tc.id))
		})
	}
	if err := e.Kill(ctx, neighbour.Spec.ID); err != nil {
		t.Fatal(err)
	}
}
