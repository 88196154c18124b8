package engine_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"lelantos.dev/lelantos/internal/engine"
	"lelantos.dev/lelantos/internal/engine/enginetest"
	"lelantos.dev/lelantos/internal/runtime"
)

// bootID is the command printing the kernel's boot id: a new one on every boot, the
// same after a restore.
const bootID = "cat /proc/sys/kernel/random/boot_id"

// TestPauseFiles: a pause that keeps only the files drops the memory and processes;
// the resume is a new boot (another boot id, the start command run again) with every
// file as it was, deletions of the template's files included. A pause with memory
// followed by a reboot does the same, and so does a node restart in between.
func TestPauseFiles(t *testing.T) {
	node := enginetest.NewNode(t, "10.232.63.0/24")
	e := node.Engine(t)
	ctx := context.Background()
	const prefix = "pf"
	before := node.HostState(t, prefix)
	spec := newSpec(t, prefix+"a")
	spec.StartCmd = "echo started >> /root/starts; sleep 100000"
	src := create(t, e, spec)
	must(t, src, "for i in $(seq 50); do test -s /root/starts && exit 0; sleep 0.1; done; exit 1")
	must(t, src, "echo kept > /root/file; echo tmp > /tmp/on-disk; rm /etc/motd; "+counterCmd)
	waitCounter(t, src, 3)
	boot := must(t, src, bootID)
	counted := func(st engine.Status) string {
		return must(t, st, "pgrep -f 'counter[.]new' || echo none")
	}

	// checkFresh asserts st is a new boot with the files of before.
	checkFresh := func(t *testing.T, st engine.Status, starts int, prevBoot string) string {
		t.Helper()
		if st.State != engine.StateRunning || st.Address != src.Address {
			t.Fatalf("resumed: %+v", st)
		}
		if got := must(t, st, "cat /root/file /tmp/on-disk"); got != "kept\ntmp" {
			t.Errorf("files after a fresh boot: %q", got)
		}
		if got := must(t, st, "test -e /etc/motd && echo present || echo deleted"); got != "deleted" {
			t.Errorf("a deleted file of the template is %s again", got)
		}
		if got := counted(st); got != "none" {
			t.Errorf("the counting process survived a pause without memory: pid %s", got)
		}
		id := must(t, st, bootID)
		if id == prevBoot {
			t.Errorf("boot id %s did not change: not a new boot", id)
		}
		must(t, st, "for i in $(seq 50); do [ $(wc -l < /root/starts) -ge "+strconv.Itoa(starts)+" ] && exit 0; sleep 0.1; done; exit 1")
		return id
	}

	st, err := e.PauseFiles(ctx, src.Spec.ID)
	if err != nil {
		t.Fatalf("pause without memory: %v", err)
	}
	if st.State != engine.StatePaused || answers(src.Address) {
		t.Fatalf("after a pause without memory: %+v (daemon answers: %v)", st, answers(src.Address))
	}
	if _, err := e.PauseFiles(ctx, src.Spec.ID); !errors.Is(err, engine.ErrState) {
		t.Errorf("pause of a paused sandbox: %v, want ErrState", err)
	}
	if st, err = e.Resume(ctx, src.Spec.ID); err != nil {
		t.Fatalf("resume: %v", err)
	}
	boot = checkFresh(t, st, 2, boot)

	t.Run("a pause with memory, then a reboot", func(t *testing.T) {
		must(t, st, "echo second > /root/file2; "+counterCmd)
		waitCounter(t, st, 3)
		if _, err := e.Pause(ctx, src.Spec.ID); err != nil {
			t.Fatal(err)
		}
		rebooted, err := e.Reboot(ctx, src.Spec.ID)
		if err != nil {
			t.Fatalf("reboot: %v", err)
		}
		boot = checkFresh(t, rebooted, 3, boot)
		if got := must(t, rebooted, "cat /root/file2"); got != "second" {
			t.Errorf("file2 = %q", got)
		}
		st = rebooted
	})

	t.Run("a node restart in between", func(t *testing.T) {
		must(t, st, "echo third > /root/file3")
		if _, err := e.PauseFiles(ctx, src.Spec.ID); err != nil {
			t.Fatal(err)
		}
		e.Close()
		e = node.Engine(t)
		if got, err := e.Get(src.Spec.ID); err != nil || got.State != engine.StatePaused {
			t.Fatalf("after a restart: %+v, %v; want it paused", got, err)
		}
		resumed, err := e.Resume(ctx, src.Spec.ID)
		if err != nil {
			t.Fatalf("resume after a restart: %v", err)
		}
		checkFresh(t, resumed, 4, boot)
		if got := must(t, resumed, "cat /root/file3"); got != "third" {
			t.Errorf("file3 = %q", got)
		}
	})

	if err := e.Kill(ctx, src.Spec.ID); err != nil {
		t.Fatal(err)
	}
	if d := node.HostState(t, prefix).Diff(before); d != "" {
		t.Errorf("left on the host:\n%s", d)
	}
}

// TestPauseFilesRunc: runc cannot keep files without memory; the sandbox runs on.
func TestPauseFilesRunc(t *testing.T) {
	node := enginetest.NewNode(t, "10.232.64.0/24")
	e := node.Engine(t)
	ctx := context.Background()
	s := newSpec(t, "pfrunc")
	s.RuntimeClass = "runc"
	st := create(t, e, s)
	_, err := e.PauseFiles(ctx, st.Spec.ID)
	if !runtime.IsUnsupported(err) || !strings.Contains(err.Error(), "keeps only the files") {
		t.Fatalf("pause without memory on runc: %v, want an unsupported error", err)
	}
	if got := must(t, st, "echo up"); got != "up" {
		t.Errorf("runc sandbox after a refused pause: %q", got)
	}
	if _, err := e.Pause(ctx, st.Spec.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Reboot(ctx, st.Spec.ID); !runtime.IsUnsupported(err) {
		t.Errorf("reboot of a frozen runc sandbox: %v, want an unsupported error", err)
	}
	if _, err := e.Resume(ctx, st.Spec.ID); err != nil {
		t.Fatal(err)
	}
}
