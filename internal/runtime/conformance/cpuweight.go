package conformance

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"lelantos.dev/lelantos/internal/runtime"
	"lelantos.dev/lelantos/internal/runtime/cgroups"
)

// testCPUWeight checks that a sandbox started with a CPUWeight runs in a cgroup
// of that weight, and that SetCPUWeight changes it while the sandbox runs. What
// the kernel's scheduler makes of weights is the kernel's; the warm pool's gain
// from them is measured by the benchmarks.
func testCPUWeight(t *testing.T, h *Harness, rt runtime.Runtime) {
	ctx := context.Background()
	cg := cgroups.Detect("")
	normal := h.start(t, rt, newID(t, "n"))
	background := h.startWith(t, rt, newID(t, "b"), func(c *runtime.Config) { c.CPUWeight = runtime.CPUWeightBackground })
	if got, want := weightOf(t, cg, rt, normal.id), cg.CPUWeightFor(runtime.CPUWeightNormal); got != want {
		t.Errorf("a sandbox started without a weight runs at weight %d, want %d", got, want)
	}
	if got, want := weightOf(t, cg, rt, background.id), cg.CPUWeightFor(runtime.CPUWeightBackground); got != want {
		t.Errorf("a sandbox started at the background weight runs at weight %d, want %d", got, want)
	}
	if err := rt.SetCPUWeight(ctx, background.id, runtime.CPUWeightNormal); err != nil {
		t.Fatalf("set cpu weight: %v", err)
	}
	if got, want := weightOf(t, cg, rt, background.id), cg.CPUWeightFor(runtime.CPUWeightNormal); got != want {
		t.Errorf("after SetCPUWeight(%d) the sandbox runs at weight %d, want %d", runtime.CPUWeightNormal, got, want)
	}
	if err := rt.SetCPUWeight(ctx, "nosuchsandbox", runtime.CPUWeightNormal); err == nil {
		t.Error("SetCPUWeight of an unknown sandbox: no error")
	}
}

// weightOf reads the CPU weight of the cgroup that sandbox id's outermost
// process runs in, as the hierarchy stores it.
func weightOf(t *testing.T, cg cgroups.Hierarchy, rt runtime.Runtime, id string) uint64 {
	t.Helper()
	infos, err := rt.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pid := 0
	for _, i := range infos {
		if i.ID == id {
			pid = i.Pid
		}
	}
	if pid == 0 {
		t.Fatalf("sandbox %s has no process in %v", id, infos)
	}
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cgroup"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if (cg.V2 && parts[1] == "") || (!cg.V2 && slices.Contains(strings.Split(parts[1], ","), "cpu")) {
			w, err := cg.CPUWeight(parts[2])
			if err != nil {
				t.Fatalf("weight of sandbox %s (pid %d): %v", id, pid, err)
			}
			return w
		}
	}
	t.Fatalf("sandbox %s (pid %d) is in no cpu cgroup: %s", id, pid, b)
	return 0
}
