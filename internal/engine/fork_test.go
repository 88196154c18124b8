package engine_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/engine"
	"lelantos.dev/lelantos/internal/engine/enginetest"
	"lelantos.dev/lelantos/internal/network"
)

// TestPauseResumeAndFork: a process's memory and the files written before a pause
// survive two pause/resume cycles and reach each of three forks; every fork has its
// own address, writable layer and identity, and the source stays paused.
func TestPauseResumeAndFork(t *testing.T) {
	node := enginetest.NewNode(t, "10.232.1.0/24")
	e := node.Engine(t)
	ctx := context.Background()
	spec := newSpec(t, "forksrc")
	spec.EnvVars = map[string]string{"FROM_CREATE": "yes"}
	src := create(t, e, spec)
	if got := must(t, src, "echo $FROM_CREATE"); got != "yes" {
		t.Errorf("FROM_CREATE = %q", got)
	}
	must(t, src, "echo kept > /root/before-pause; "+counterCmd)
	loopPid := must(t, src, "pgrep -f 'counter.new' | head -1")
	waitCounter(t, src, 5)

	for cycle := 1; cycle <= 2; cycle++ {
		before := mustInt(t, src, readCounter)
		start := time.Now()
		st, err := e.Pause(ctx, src.Spec.ID)
		if err != nil {
			t.Fatalf("cycle %d: pause: %v", cycle, err)
		}
		paused := time.Since(start)
		if st.State != engine.StatePaused {
			t.Fatalf("cycle %d: paused sandbox is %s", cycle, st.State)
		}
		if answers(src.Address) {
			t.Fatalf("cycle %d: a paused sandbox's daemon answers", cycle)
		}
		start = time.Now()
		if src, err = e.Resume(ctx, src.Spec.ID); err != nil {
			t.Fatalf("cycle %d: resume: %v", cycle, err)
		}
		t.Logf("cycle %d: pause %v, resume %v", cycle, paused.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
		after := mustInt(t, src, readCounter)
		if after < before {
			t.Fatalf("cycle %d: counter went from %d back to %d: memory was not kept", cycle, before, after)
		}
		if pid := must(t, src, "pgrep -f 'counter.new' | head -1"); pid != loopPid {
			t.Fatalf("cycle %d: the counting process is %q, was %q", cycle, pid, loopPid)
		}
		waitCounter(t, src, after+3) // and it goes on counting
		if got := must(t, src, "cat /root/before-pause"); got != "kept" {
			t.Fatalf("cycle %d: file written before the pauses holds %q", cycle, got)
		}
	}

	// The counter can only have grown between this read and the pause.
	atPause := mustInt(t, src, readCounter)
	if _, err := e.Pause(ctx, src.Spec.ID); err != nil {
		t.Fatalf("pause before fork: %v", err)
	}
	forkSpecs := []engine.Spec{
		{ID: "fork0"},
		{ID: "fork1", AccessToken: "fork1-token", EnvVars: map[string]string{"FORK_NAME": "one"}},
		{ID: "fork2", TemplateID: "renamed", CPUCount: 1, MemoryMB: 256},
	}
	start := time.Now()
	forks, err := e.Fork(ctx, src.Spec.ID, forkSpecs)
	if err != nil {
		t.Fatalf("fork: %v", err)
	}
	t.Logf("fork into %d: %v", len(forks), time.Since(start).Round(time.Millisecond))
	for _, f := range forks {
		t.Cleanup(func() { killed(t, e, f.Spec.ID) })
	}
	if st, err := e.Get(src.Spec.ID); err != nil || st.State != engine.StatePaused {
		t.Fatalf("source after fork: %+v, %v; want it still paused", st, err)
	}

	addrs := map[string]string{src.Address: src.Spec.ID}
	for i, f := range forks {
		if f.Spec.ID != forkSpecs[i].ID || f.State != engine.StateRunning {
			t.Fatalf("fork %d: %s is %s", i, f.Spec.ID, f.State)
		}
		if other, dup := addrs[f.Address]; dup {
			t.Fatalf("fork %s has the address %s of %s", f.Spec.ID, f.Address, other)
		}
		addrs[f.Address] = f.Spec.ID
		if n := mustInt(t, f, readCounter); n < atPause {
			t.Errorf("fork %s: counter %d < %d at the pause: memory not inherited", f.Spec.ID, n, atPause)
		}
		waitCounter(t, f, atPause+3)
		if got := must(t, f, "cat /root/before-pause"); got != "kept" {
			t.Errorf("fork %s: file from before the pause holds %q", f.Spec.ID, got)
		}
		must(t, f, fmt.Sprintf("echo %s > /root/owner", f.Spec.ID))
	}
	for _, f := range forks {
		if got := must(t, f, "cat /root/owner"); got != f.Spec.ID {
			t.Errorf("fork %s reads /root/owner = %q: another fork's write leaked in", f.Spec.ID, got)
		}
	}

	t.Run("identity", func(t *testing.T) {
		if forks[0].Spec.AccessToken != src.Spec.AccessToken || forks[2].Spec.TemplateID != "renamed" {
			t.Errorf("fork specs: %+v / %+v", forks[0].Spec, forks[2].Spec)
		}
		f1 := forks[1]
		if r, err := sh(ctx, f1.Address, src.Spec.AccessToken, "true"); err == nil {
			t.Errorf("fork1 still accepts the source's token: %+v", r)
		}
		if got := must(t, f1, "echo $FORK_NAME $FROM_CREATE"); got != "one yes" {
			t.Errorf("fork1 FORK_NAME FROM_CREATE = %q", got)
		}
		if got := must(t, forks[0], "echo ${FORK_NAME:-unset}"); got != "unset" {
			t.Errorf("fork0 FORK_NAME = %q", got)
		}
	})

	if src, err = e.Resume(ctx, src.Spec.ID); err != nil {
		t.Fatalf("resume source after fork: %v", err)
	}
	if got := must(t, src, "cat /root/owner 2>&1 || true"); !strings.Contains(got, "No such file") {
		t.Errorf("source sees a fork's write: %q", got)
	}
	waitCounter(t, src, atPause+3)

	t.Run("forks outlive their source", func(t *testing.T) {
		if err := e.Kill(ctx, src.Spec.ID); err != nil {
			t.Fatalf("kill source: %v", err)
		}
		for _, f := range forks {
			waitCounter(t, f, mustInt(t, f, readCounter)+2)
		}
	})
	t.Run("a fork pauses and forks in turn", func(t *testing.T) {
		f := forks[2]
		if _, err := e.Pause(ctx, f.Spec.ID); err != nil {
			t.Fatalf("pause fork: %v", err)
		}
		grand, err := e.Fork(ctx, f.Spec.ID, []engine.Spec{{ID: "grandchild"}})
		if err != nil {
			t.Fatalf("fork a fork: %v", err)
		}
		t.Cleanup(func() { killed(t, e, "grandchild") })
		if f, err = e.Resume(ctx, f.Spec.ID); err != nil {
			t.Fatalf("resume fork: %v", err)
		}
		for _, s := range []engine.Status{f, grand[0]} {
			if got := must(t, s, "cat /root/owner /root/before-pause | tr '\\n' ' '"); got != "fork2 kept" {
				t.Errorf("%s reads %q", s.Spec.ID, got)
			}
			waitCounter(t, s, mustInt(t, s, readCounter)+2)
		}
		if err := e.Kill(ctx, "grandchild"); err != nil {
			t.Errorf("kill grandchild: %v", err)
		}
	})

	for _, id := range []string{"fork0", "fork1", "fork2"} {
		if err := e.Kill(ctx, id); err != nil {
			t.Errorf("kill %s: %v", id, err)
		}
	}
	if left := e.List(); len(left) != 0 {
		t.Errorf("sandboxes left: %+v", left)
	}
}

// TestForkErrors: what Fork refuses, and a fork failing half-way leaves nothing.
// A running source forks in place (see TestForkRunning for the details).
func TestForkErrors(t *testing.T) {
	// A /29 holds two sandbox networks: the source's and one fork's.
	node := enginetest.NewNode(t, "10.232.2.0/29")
	e := node.Engine(t)
	ctx := context.Background()
	const prefix = "fe" // every id here starts with it
	before := node.HostState(t, prefix)
	src := create(t, e, newSpec(t, prefix+"src"))
	must(t, src, "echo from-source > /root/f")
	// A running source is checkpointed in place and runs on; its fork is like any.
	early, err := e.Fork(ctx, src.Spec.ID, []engine.Spec{{ID: prefix + "early"}})
	if err != nil {
		t.Fatalf("fork of a running sandbox: %v", err)
	}
	if got := must(t, early[0], "cat /root/f"); got != "from-source" {
		t.Errorf("early fork reads %q", got)
	}
	if got := must(t, src, "cat /root/f"); got != "from-source" {
		t.Errorf("source after an in-place fork reads %q", got)
	}
	if err := e.Kill(ctx, early[0].Spec.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Pause(ctx, src.Spec.ID); err != nil {
		t.Fatal(err)
	}
	pausedOnly := node.SettledHostState(t, prefix) // the checkpointed runsc state goes after Pause returns
	tests := []struct {
		name  string
		src   string
		specs []engine.Spec
		want  error
		// mention names the fork the error must be about.
		mention string
	}{
		{"unknown source", prefix + "nosuch", []engine.Spec{{ID: prefix + "a"}}, engine.ErrNotFound, ""},
		{"no forks", src.Spec.ID, nil, engine.ErrInvalid, ""},
		{"bad id", src.Spec.ID, []engine.Spec{{ID: "Bad_ID"}}, engine.ErrInvalid, ""},
		{"other memory", src.Spec.ID, []engine.Spec{{ID: prefix + "a", MemoryMB: 512}}, engine.ErrInvalid, ""},
		{"other template", src.Spec.ID, []engine.Spec{{ID: prefix + "a", RootfsPath: "/"}}, engine.ErrInvalid, ""},
		{"other runtime", src.Spec.ID, []engine.Spec{{ID: prefix + "a", RuntimeClass: "runc"}}, engine.ErrInvalid, ""},
		{"source's id", src.Spec.ID, []engine.Spec{{ID: src.Spec.ID}}, engine.ErrExists, ""},
		{"same id twice", src.Spec.ID, []engine.Spec{{ID: prefix + "a"}, {ID: prefix + "a"}}, engine.ErrExists, ""},
		// The second fork finds the subnet exhausted after the first was made.
		// That one fork fits is shown by the fork after the table.
		{"fails half-way", src.Spec.ID, []engine.Spec{{ID: prefix + "half1"}, {ID: prefix + "half2"}},
			network.ErrExhausted, "fork " + prefix + "half2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			forks, err := e.Fork(ctx, tc.src, tc.specs)
			if err == nil || forks != nil {
				t.Fatalf("got %+v, %v; want an error", forks, err)
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("got %v, want %v about %q", err, tc.want, tc.mention)
			}
			if l := e.List(); len(l) != 1 || l[0].Spec.ID != src.Spec.ID || l[0].State != engine.StatePaused {
				t.Errorf("after a failed fork the engine lists %+v, want only the paused source", l)
			}
			if d := node.HostState(t, prefix).Diff(pausedOnly); d != "" {
				t.Errorf("a failed fork left on the host:\n%s", d)
			}
		})
	}
	// After all that the source still forks; killing it while paused leaves nothing.
	forks, err := e.Fork(ctx, src.Spec.ID, []engine.Spec{{ID: prefix + "late"}})
	if err != nil {
		t.Fatalf("fork after failures: %v", err)
	}
	if got := must(t, forks[0], "cat /root/f"); got != "from-source" {
		t.Errorf("late fork reads %q", got)
	}
	if err := e.Kill(ctx, src.Spec.ID); err != nil {
		t.Fatalf("kill the paused source: %v", err)
	}
	if err := e.Kill(ctx, forks[0].Spec.ID); err != nil {
		t.Fatal(err)
	}
	if d := node.HostState(t, prefix).Diff(before); d != "" {
		t.Errorf("left on the host:\n%s", d)
	}
}
