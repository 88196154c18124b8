package engine_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/engine"
	"lelantos.dev/lelantos/internal/engine/enginetest"
)

// leakCycles is how many sandboxes TestNoLeaks creates and kills.
const leakCycles = 100

// TestNoLeaks creates and kills many sandboxes, two at a time, restarting the node
// half-way while some run and one is paused; afterwards nothing of them is left on
// the host.
func TestNoLeaks(t *testing.T) {
	node := enginetest.NewNode(t, "10.232.16.0/22")
	const prefix = "leak"
	before := node.HostState(t, prefix)
	e := node.Engine(t)
	ctx := context.Background()
	small := func(id string) engine.Spec {
		s := newSpec(t, id)
		s.MemoryMB, s.DiskSizeMB = 128, 128
		return s
	}
	var mu sync.Mutex
	var creates, kills []time.Duration
	cycles := func(e *engine.Engine, from, to int) {
		ids := make(chan int)
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				for i := range ids {
					id := fmt.Sprintf("%scycle%d", prefix, i)
					start := time.Now()
					st, err := e.Create(ctx, small(id))
					if err != nil {
						t.Errorf("cycle %d: create: %v", i, err)
						continue
					}
					created := time.Since(start)
					if r, err := sh(ctx, st.Address, st.Spec.AccessToken, "echo $((40+2))"); err != nil || r.Out != "42" {
						t.Errorf("cycle %d: run: %+v %v", i, r, err)
					}
					start = time.Now()
					if err := e.Kill(ctx, id); err != nil {
						t.Errorf("cycle %d: kill: %v", i, err)
					}
					mu.Lock()
					creates, kills = append(creates, created), append(kills, time.Since(start))
					mu.Unlock()
				}
			})
		}
		for i := from; i < to; i++ {
			ids <- i
		}
		close(ids)
		wg.Wait()
	}

	start := time.Now()
	cycles(e, 0, leakCycles/2)
	// Across a restart: two running sandboxes and a paused one.
	var long []engine.Status
	for _, id := range []string{prefix + "run1", prefix + "run2", prefix + "paused"} {
		st := create(t, e, small(id))
		must(t, st, "echo "+id+" > /root/mark; "+counterCmd)
		waitCounter(t, st, 1)
		long = append(long, st)
	}
	if _, err := e.Pause(ctx, prefix+"paused"); err != nil {
		t.Fatal(err)
	}
	e.Close()
	e = node.Engine(t)
	for _, st := range long {
		got, err := e.Get(st.Spec.ID)
		if err != nil {
			t.Fatalf("after restart: %v", err)
		}
		if got.State == engine.StatePaused {
			if got, err = e.Resume(ctx, st.Spec.ID); err != nil {
				t.Fatalf("resume after restart: %v", err)
			}
		}
		if got.State != engine.StateRunning {
			t.Fatalf("%s after restart: %s (%s)", st.Spec.ID, got.State, got.Reason)
		}
		if mark := must(t, got, "cat /root/mark"); mark != st.Spec.ID {
			t.Errorf("%s after restart reads %q", st.Spec.ID, mark)
		}
		waitCounter(t, got, mustInt(t, got, readCounter)+2)
	}
	cycles(e, leakCycles/2, leakCycles)
	for _, st := range long {
		if err := e.Kill(ctx, st.Spec.ID); err != nil {
			t.Errorf("kill %s: %v", st.Spec.ID, err)
		}
	}
	elapsed := time.Since(start)
	slices.Sort(creates)
	slices.Sort(kills)
	if len(creates) == leakCycles {
		t.Logf("%d cycles in %v: create p50 %v p90 %v max %v; kill p50 %v p90 %v", leakCycles, elapsed.Round(time.Millisecond),
			creates[len(creates)/2].Round(time.Millisecond), creates[len(creates)*9/10].Round(time.Millisecond),
			creates[len(creates)-1].Round(time.Millisecond), kills[len(kills)/2].Round(time.Millisecond),
			kills[len(kills)*9/10].Round(time.Millisecond))
	}
	if left := e.List(); len(left) != 0 {
		t.Errorf("the engine still lists %+v", left)
	}
	// Sandbox processes may take a moment to be reaped after a kill.
	deadline := time.Now().Add(5 * time.Second)
	for {
		d := node.HostState(t, prefix).Diff(before)
		if d == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("left on the host after %d sandboxes:\n%s", leakCycles+len(long), d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
