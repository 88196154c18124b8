package engine_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/engine"
	"lelantos.dev/lelantos/internal/engine/enginetest"
	"lelantos.dev/lelantos/internal/network"
)

// withCapacity gives an engine a node of cpus CPUs and memMB MB, without overcommit.
func withCapacity(cpus, memMB int) func(*engine.Options) {
	return func(o *engine.Options) {
		o.NodeCPUs, o.NodeMemoryMB, o.CPUOvercommit, o.MemoryOvercommit = cpus, memMB, 1, 1
	}
}

// sized is newSpec with other CPU and memory.
func sized(t *testing.T, id string, cpus, memMB int) engine.Spec {
	s := newSpec(t, id)
	s.CPUCount, s.MemoryMB = cpus, memMB
	return s
}

// wantCommitted checks what the engine says its sandboxes commit.
func wantCommitted(t *testing.T, e *engine.Engine, cpus, memMB int) {
	t.Helper()
	if got := e.Capacity().Committed; got != (engine.Usage{CPUs: cpus, MemoryMB: memMB}) {
		t.Fatalf("committed %+v, want %d CPUs and %d MB", got, cpus, memMB)
	}
}

// wantFull checks that err is ErrNodeFull saying msg.
func wantFull(t *testing.T, err error, msg string) {
	t.Helper()
	if !errors.Is(err, engine.ErrNodeFull) || !strings.Contains(err.Error(), msg) {
		t.Fatalf("got %v, want ErrNodeFull saying %q", err, msg)
	}
}

// TestAdmission: a node refuses what does not fit, by memory and by CPU, for
// creates, resumes and forks, and every way a sandbox ends or is checkpointed gives
// its room back.
func TestAdmission(t *testing.T) {
	node := enginetest.NewNode(t, "10.232.22.0/24")
	e := node.EngineWith(t, withCapacity(3, 1024))
	ctx := context.Background()
	if got := e.Capacity().Limit; got != (engine.Usage{CPUs: 3, MemoryMB: 1024}) {
		t.Fatalf("limit %+v, want 3 CPUs and 1024 MB", got)
	}
	create(t, e, sized(t, "admita", 1, 256))
	create(t, e, sized(t, "admitb", 1, 256))
	wantCommitted(t, e, 2, 512)

	_, err := e.Create(ctx, sized(t, "admitc", 1, 768))
	wantFull(t, err, "node full: 512 MiB of 1 GiB memory committed, sandbox asks 768 MiB")
	_, err = e.Create(ctx, sized(t, "admitc", 2, 256))
	wantFull(t, err, "node full: 2 of 3 CPUs committed, sandbox asks 2")
	if _, err := e.Get("admitc"); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("a refused sandbox is on the node: %v", err)
	}
	wantCommitted(t, e, 2, 512)

	create(t, e, sized(t, "admitc", 1, 256))
	_, err = e.Create(ctx, sized(t, "admitd", 1, 128))
	wantFull(t, err, "3 of 3 CPUs committed")
	if err := e.Kill(ctx, "admitc"); err != nil {
		t.Fatal(err)
	}
	d := create(t, e, sized(t, "admitd", 1, 256))
	wantCommitted(t, e, 3, 768)

	// A checkpointed sandbox holds nothing until it resumes.
	if _, err := e.Pause(ctx, "admitd"); err != nil {
		t.Fatal(err)
	}
	wantCommitted(t, e, 2, 512)
	create(t, e, sized(t, "admite", 1, 256))
	_, err = e.Resume(ctx, "admitd")
	wantFull(t, err, "3 of 3 CPUs committed")
	if st, _ := e.Get("admitd"); st.State != engine.StatePaused {
		t.Fatalf("a refused resume left the sandbox %s", st.State)
	}
	if err := e.Kill(ctx, "admite"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Resume(ctx, "admitd"); err != nil {
		t.Fatal(err)
	}
	must(t, d, "true")
	wantCommitted(t, e, 3, 768)

	// Forks are all or nothing: the one that fits is removed with the one that
	// does not.
	if _, err := e.Pause(ctx, "admita"); err != nil {
		t.Fatal(err)
	}
	_, err = e.Fork(ctx, "admita", []engine.Spec{{ID: "admitf1"}, {ID: "admitf2"}})
	wantFull(t, err, "3 of 3 CPUs committed")
	if _, err := e.Get("admitf1"); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("the fork that fitted is still there: %v", err)
	}
	wantCommitted(t, e, 2, 512)

	for _, id := range []string{"admita", "admitb", "admitd"} {
		if err := e.Kill(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	wantCommitted(t, e, 0, 0)
}

// TestAdmissionRace: creates racing for the last room never overcommit the node.
func TestAdmissionRace(t *testing.T) {
	node := enginetest.NewNode(t, "10.232.23.0/24")
	e := node.EngineWith(t, withCapacity(64, 3*256))
	ctx := context.Background()
	var over atomic.Bool
	stop := make(chan struct{})
	var watcher sync.WaitGroup
	watcher.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if c := e.Capacity(); !c.Committed.Within(c.Limit) {
				over.Store(true)
			}
			time.Sleep(time.Millisecond)
		}
	})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var made, full []string
	for i := range 7 {
		id := fmt.Sprintf("racer%d", i)
		wg.Go(func() {
			_, err := e.Create(ctx, sized(t, id, 1, 256))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				made = append(made, id)
				t.Cleanup(func() { killed(t, e, id) })
			case errors.Is(err, engine.ErrNodeFull):
				full = append(full, id)
			default:
				t.Errorf("create %s: %v", id, err)
			}
		})
	}
	wg.Wait()
	close(stop)
	watcher.Wait()
	if len(made) != 3 || len(full) != 4 {
		t.Fatalf("created %v, refused %v: want 3 created and 4 refused", made, full)
	}
	if over.Load() {
		t.Fatal("the node committed more than its capacity at some point")
	}
	wantCommitted(t, e, 3, 768)
	if got := len(e.List()); got != 3 {
		t.Fatalf("the node lists %d sandboxes, want 3", got)
	}
}

// TestAdmissionWarmPool: pooled sandboxes count against capacity, a real create
// takes the room of a pooled one rather than fail (waiting for one still booting),
// and the pool waits for room to refill.
func TestAdmissionWarmPool(t *testing.T) {
	node := enginetest.NewNode(t, "10.232.24.0/24")
	pooled := sized(t, "", 1, 256)
	e := node.EngineWith(t, func(o *engine.Options) {
		withCapacity(64, 512)(o)
		o.Warm = []engine.WarmPool{{Spec: pooled, Size: 1}}
	})
	waitWarm(t, e, 1)
	wantCommitted(t, e, 1, 256)
	other := func(id string) engine.Spec { // not the pool's shape
		s := sized(t, id, 1, 256)
		s.DiskSizeMB = 384
		return s
	}
	// Taken from the pool, which boots another at once.
	create(t, e, sized(t, "warmadmit0", 1, 256))
	for deadline := time.Now().Add(5 * time.Second); e.Capacity().Committed.MemoryMB != 512 || e.Warm() != 0; {
		if time.Now().After(deadline) {
			t.Fatalf("no pooled sandbox is booting: committed %+v, %d ready", e.Capacity().Committed, e.Warm())
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Full, with the pool's next sandbox still booting: it gives way once ready.
	create(t, e, other("warmadmit1"))
	if n := e.Warm(); n != 0 {
		t.Fatalf("%d pooled sandboxes after a create took the pool's room, want 0", n)
	}
	wantCommitted(t, e, 2, 512)
	_, err := e.Create(context.Background(), other("warmadmit2"))
	wantFull(t, err, "512 MiB of 512 MiB memory committed")
	time.Sleep(2 * time.Second)
	if n := e.Warm(); n != 0 {
		t.Fatalf("the pool refilled to %d on a full node", n)
	}
	if err := e.Kill(context.Background(), "warmadmit1"); err != nil {
		t.Fatal(err)
	}
	waitWarm(t, e, 1) // the pool takes the room that was given back
	wantCommitted(t, e, 2, 512)
	// Full again, and a ready pooled sandbox gives way.
	create(t, e, other("warmadmit3"))
	if n := e.Warm(); n != 0 {
		t.Fatalf("%d pooled sandboxes after a create took the pool's room, want 0", n)
	}
	wantCommitted(t, e, 2, 512)
}

// TestAdmissionAddresses: a node out of sandbox addresses is full too, and says so.
func TestAdmissionAddresses(t *testing.T) {
	node := enginetest.NewNode(t, "10.232.25.0/29") // two /30s
	e := node.Engine(t)
	create(t, e, newSpec(t, "addrfull1"))
	create(t, e, newSpec(t, "addrfull2"))
	_, err := e.Create(context.Background(), newSpec(t, "addrfull3"))
	wantFull(t, err, "node full: no free sandbox addresses")
	if !errors.Is(err, network.ErrExhausted) {
		t.Errorf("%v does not wrap network.ErrExhausted", err)
	}
	wantCommitted(t, e, 2, 512)
}
