package engine_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"lelantos.dev/lelantos/internal/engine"
	"lelantos.dev/lelantos/internal/engine/enginetest"
)

// TestForkRunning: a running source is checkpointed in place: it keeps its address,
// its processes (the same counting process goes on) and its files, and each fork
// starts from that moment with a layer of its own. A fork that does not fit on the
// node fails alone; the others are made.
func TestForkRunning(t *testing.T) {
	node := enginetest.NewNode(t, "10.232.61.0/24")
	// Room for the source and one fork of 1 CPU each, not two.
	e := node.EngineWith(t, withCapacity(2, 4096))
	ctx := context.Background()
	const prefix = "fr"
	before := node.HostState(t, prefix)
	src := create(t, e, newSpec(t, prefix+"src"))
	must(t, src, "echo from-source > /root/f; "+counterCmd)
	pid := must(t, src, "pgrep -f 'counter.new' | head -1")
	atFork := waitCounter(t, src, 5)

	results, err := e.ForkEach(ctx, src.Spec.ID, []engine.Spec{
		{ID: prefix + "a", AccessToken: "tok-a"},
		{ID: prefix + "b", AccessToken: "tok-b"},
	})
	if err != nil {
		t.Fatalf("fork a running sandbox: %v", err)
	}
	if len(results) != 2 {
		t.Fatalf("%d results for 2 forks", len(results))
	}
	if results[0].Err != nil {
		t.Fatalf("first fork: %v", results[0].Err)
	}
	if err := results[1].Err; !errors.Is(err, engine.ErrNodeFull) {
		t.Fatalf("second fork on a full node: %v, want ErrNodeFull", err)
	}
	if _, err := e.Get(prefix + "b"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("the fork that did not fit is listed: %v", err)
	}
	fork := results[0].Status
	t.Cleanup(func() { killed(t, e, fork.Spec.ID) })

	st, err := e.Get(src.Spec.ID)
	if err != nil || st.State != engine.StateRunning || st.Address != src.Address {
		t.Fatalf("source after an in-place fork: %+v, %v; want it running at %s", st, err, src.Address)
	}
	if got := must(t, src, "pgrep -f 'counter.new' | head -1"); got != pid {
		t.Errorf("the source's counting process is %q, was %q: it was restarted", got, pid)
	}
	waitCounter(t, src, atFork+3)
	if n := mustInt(t, fork, readCounter); n < atFork {
		t.Errorf("fork's counter %d < %d at the fork: memory not inherited", n, atFork)
	}
	waitCounter(t, fork, atFork+3)
	if fork.Address == src.Address {
		t.Errorf("fork shares the source's address %s", src.Address)
	}
	must(t, fork, "echo fork > /root/f")
	if got := must(t, src, "cat /root/f"); got != "from-source" {
		t.Errorf("the fork's write reached the source: %q", got)
	}
	if r, err := sh(ctx, fork.Address, src.Spec.AccessToken, "true"); err == nil && r.Code == 0 {
		t.Errorf("fork accepts the source's token")
	}

	for _, id := range []string{fork.Spec.ID, src.Spec.ID} {
		if err := e.Kill(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if d := node.HostState(t, prefix).Diff(before); d != "" {
		t.Errorf("left on the host:\n%s", d)
	}
}

// TestSnapshots: a snapshot is taken of a running sandbox in place (it runs on with
// its processes), serves several new sandboxes with its memory and files, outlives
// its source, and once deleted serves none.
func TestSnapshots(t *testing.T) {
	node := enginetest.NewNode(t, "10.232.62.0/24")
	e := node.Engine(t)
	ctx := context.Background()
	const prefix = "sn"
	before := node.HostState(t, prefix)
	src := create(t, e, newSpec(t, prefix+"src"))
	must(t, src, "echo in-snapshot > /root/f; "+counterCmd)
	pid := must(t, src, "pgrep -f 'counter.new' | head -1")
	atSnap := waitCounter(t, src, 5)

	info, err := e.TakeSnapshot(ctx, src.Spec.ID, "snapone")
	if err != nil {
		t.Fatalf("take snapshot: %v", err)
	}
	if info.ID != "snapone" || info.SourceID != src.Spec.ID || info.RootfsPath != src.Spec.RootfsPath ||
		info.MemoryMB != src.Spec.MemoryMB || info.SizeBytes <= 0 {
		t.Errorf("snapshot info %+v", info)
	}
	if got := must(t, src, "pgrep -f 'counter.new' | head -1"); got != pid {
		t.Errorf("source's counting process is %q after the snapshot, was %q", got, pid)
	}
	must(t, src, "echo after-snapshot > /root/f")

	for _, tc := range []struct {
		name, sandbox, snapshot string
		want                    error
	}{
		{"same id again", src.Spec.ID, "snapone", engine.ErrExists},
		{"bad id", src.Spec.ID, "Snap_One", engine.ErrInvalid},
		{"unknown sandbox", prefix + "nosuch", "snaptwo", engine.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := e.TakeSnapshot(ctx, tc.sandbox, tc.snapshot); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}

	// The source is gone before its snapshot is used.
	if err := e.Kill(ctx, src.Spec.ID); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		id := fmt.Sprintf("%sc%d", prefix, i)
		s := engine.Spec{ID: id, Snapshot: "snapone", AccessToken: "tok-" + id, EnvVars: map[string]string{"CHILD": id}}
		st := create(t, e, s)
		if st.Spec.RootfsPath != src.Spec.RootfsPath || st.Spec.MemoryMB != src.Spec.MemoryMB {
			t.Errorf("%s: spec %+v does not take the snapshot's tree and sizes", id, st.Spec)
		}
		if got := must(t, st, "cat /root/f; echo $CHILD"); got != "in-snapshot\n"+id {
			t.Errorf("%s reads %q", id, got)
		}
		if n := mustInt(t, st, readCounter); n < atSnap {
			t.Errorf("%s: counter %d < %d at the snapshot: memory not restored", id, n, atSnap)
		}
		waitCounter(t, st, atSnap+3)
		must(t, st, "echo "+id+" > /root/f")
	}
	if l, err := e.Snapshots(); err != nil || len(l) != 1 || l[0].ID != "snapone" {
		t.Errorf("snapshots: %+v, %v", l, err)
	}
	if err := e.DeleteSnapshot(ctx, "snapone"); err != nil {
		t.Fatalf("delete snapshot: %v", err)
	}
	if err := e.DeleteSnapshot(ctx, "snapone"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("delete again: %v, want ErrNotFound", err)
	}
	if _, err := e.Create(ctx, engine.Spec{ID: prefix + "late", Snapshot: "snapone"}); !errors.Is(err, engine.ErrInvalid) {
		t.Errorf("create from a deleted snapshot: %v, want ErrInvalid", err)
	}
	// The sandboxes made from it live on.
	if got := must(t, engine.Status{Spec: engine.Spec{AccessToken: "tok-snc1"}, Address: mustGet(t, e, prefix+"c1").Address}, "cat /root/f"); got != prefix+"c1" {
		t.Errorf("snc1 reads %q after the snapshot was deleted", got)
	}
	for i := range 3 {
		if err := e.Kill(ctx, fmt.Sprintf("%sc%d", prefix, i)); err != nil {
			t.Fatal(err)
		}
	}
	if d := node.HostState(t, prefix).Diff(before); d != "" {
		t.Errorf("left on the host:\n%s", d)
	}
}

// mustGet is Get that fails the test.
func mustGet(t testing.TB, e *engine.Engine, id string) engine.Status {
	t.Helper()
	st, err := e.Get(id)
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	return st
}
