package engine_test

import (
	"testing"

	"lelantos.dev/lelantos/internal/engine"
	"lelantos.dev/lelantos/internal/engine/enginetest"
)

// TestTmpIsOnDisk: files in /tmp count against the sandbox's disk, not its memory, as
// on a VM: gVisor would put an empty /tmp in memory, and the base template keeps it
// from being empty.
func TestTmpIsOnDisk(t *testing.T) {
	node := enginetest.NewNode(t, "10.232.9.0/24")
	e := node.Engine(t)
	s := newSpec(t, "tmpondisk")
	s.MemoryMB, s.DiskSizeMB = 256, 1024
	st := create(t, e, s)
	if fs := must(t, st, "stat -f -c %T /tmp"); fs == "tmpfs" {
		t.Fatalf("/tmp is %s", fs)
	}
	// Twice the sandbox's memory: in memory this would end the sandbox.
	must(t, st, "dd if=/dev/urandom of=/tmp/big bs=1M count=512 status=none && sync")
	if got := must(t, st, "du -m /tmp/big | cut -f1"); got != "512" {
		t.Fatalf("/tmp/big is %s MB", got)
	}
	if got, err := e.Get(s.ID); err != nil || got.State != engine.StateRunning {
		t.Fatalf("sandbox after writing to /tmp: %+v %v", got, err)
	}
}
