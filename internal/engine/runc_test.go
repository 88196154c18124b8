package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"lelantos.dev/lelantos/internal/engine"
	"lelantos.dev/lelantos/internal/engine/enginetest"
	"lelantos.dev/lelantos/internal/runtime"
)

// TestRuncClass: a runc sandbox works through the engine; its pause freezes it in
// memory, and it cannot be forked.
func TestRuncClass(t *testing.T) {
	node := enginetest.NewNode(t, "10.232.6.0/24")
	e := node.Engine(t)
	ctx := context.Background()
	s := newSpec(t, "runcbox")
	s.RuntimeClass = "runc"
	start := time.Now()
	st := create(t, e, s)
	t.Logf("runc create: %v", time.Since(start).Round(time.Millisecond))
	if st.Spec.RuntimeClass != "runc" || st.State != engine.StateRunning {
		t.Fatalf("created %+v", st)
	}
	// runc shares the host's kernel; gVisor would report its own.
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		t.Fatal(err)
	}
	if got, want := must(t, st, "uname -r"), unix.ByteSliceToString(uts.Release[:]); got != want {
		t.Errorf("kernel inside %q, host %q: not a runc sandbox", got, want)
	}
	if got := must(t, st, "echo kept > /root/f; whoami"); got != "root" {
		t.Errorf("whoami = %q", got)
	}
	must(t, st, counterCmd)
	before := waitCounter(t, st, 3)

	// Fork needs a checkpoint, running or paused.
	forkUnsupported := func(when string) {
		_, err := e.Fork(ctx, s.ID, []engine.Spec{{ID: "runcfork"}})
		if !runtime.IsUnsupported(err) || !strings.Contains(err.Error(), "runc") {
			t.Errorf("fork of a %s runc sandbox: %v, want an UnsupportedError naming runc", when, err)
		}
		if _, err := e.Get("runcfork"); !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("a failed fork left a sandbox: %v", err)
		}
	}
	forkUnsupported("running")

	start = time.Now()
	if p, err := e.Pause(ctx, s.ID); err != nil || p.State != engine.StatePaused {
		t.Fatalf("pause: %+v %v", p, err)
	}
	t.Logf("runc pause (freeze): %v", time.Since(start).Round(time.Millisecond))
	if answers(st.Address) {
		t.Error("a frozen sandbox's daemon answers")
	}
	forkUnsupported("paused")
	start = time.Now()
	if st, err := e.Resume(ctx, s.ID); err != nil || st.State != engine.StateRunning {
		t.Fatalf("resume: %+v %v", st, err)
	}
	t.Logf("runc resume (thaw): %v", time.Since(start).Round(time.Millisecond))
	if after := mustInt(t, st, readCounter); after < before {
		t.Errorf("counter went from %d back to %d across a freeze", before, after)
	}
	waitCounter(t, st, before+3)
	if got := must(t, st, "cat /root/f"); got != "kept" {
		t.Errorf("file after resume: %q", got)
	}
	if _, err := e.Metrics(ctx, s.ID); err != nil {
		t.Errorf("metrics: %v", err)
	}
	if err := e.Kill(ctx, s.ID); err != nil {
		t.Fatalf("kill: %v", err)
	}
	if answers(st.Address) {
		t.Error("a killed sandbox's daemon answers")
	}
	if infos, err := node.Runtimes["runc"].List(ctx); err != nil || len(infos) != 0 {
		t.Errorf("runc still holds %+v (%v)", infos, err)
	}
}
