package engine_test

import (
	"runtime"
	"strings"
	"testing"

	"lelantos.dev/lelantos/internal/engine"
	"lelantos.dev/lelantos/internal/engine/enginetest"
)

// TestReport: the node's report counts its sandboxes by state and what they
// commit, and reads the machine's CPUs, memory and disk.
func TestReport(t *testing.T) {
	node := enginetest.NewNode(t, "10.232.188.0/24")
	e := node.EngineWith(t, withCapacity(4, 2048))
	first, err := e.Report()
	if err != nil {
		t.Fatal(err)
	}
	if first.CPUPercent != 0 || first.Sandboxes[engine.StateRunning] != 0 {
		t.Fatalf("first report %+v: want no CPU use yet and no sandbox", first)
	}
	create(t, e, sized(t, "reporta", 1, 256))
	r, err := e.Report()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what string
		ok   bool
	}{
		{"one sandbox running", r.Sandboxes[engine.StateRunning] == 1 && len(r.Sandboxes) == 6},
		{"its commitment", r.Capacity.Committed == engine.Usage{CPUs: 1, MemoryMB: 256}},
		{"the node's limit", r.Capacity.Limit == engine.Usage{CPUs: 4, MemoryMB: 2048}},
		{"the host's CPUs", r.CPUs == runtime.NumCPU()},
		{"a CPU use in percent", r.CPUPercent >= 0 && r.CPUPercent <= 100},
		{"the host's memory", r.MemoryTotal > 0 && r.MemoryUsed > 0 && r.MemoryUsed <= r.MemoryTotal},
		{"the data directory's disk", r.DataDir != "" && r.DiskTotal > 0 && r.DiskUsed > 0 && r.DiskUsed <= r.DiskTotal},
		{"the mount holding it", r.Mount.Point != "" && r.Mount.Type != "" && strings.HasPrefix(r.DataDir, r.Mount.Point)},
	} {
		if !c.ok {
			t.Errorf("%s: report %+v", c.what, r)
		}
	}
}
