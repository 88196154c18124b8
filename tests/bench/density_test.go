package bench

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/runtime/gvisor"
	"lelantos.dev/lelantos/internal/runtime/runc"
)

// budgetBytes is the host memory the density figure is extrapolated to: 24 GiB.
const budgetBytes = 24 << 30

// BenchmarkEngineIdleDensity starts BENCH_IDLE_N (default 20) idle gVisor sandboxes
// of 512 MB (nothing running but envd), waits BENCH_SETTLE_S seconds (default 10),
// and measures the host's MemAvailable drop and each sandbox's cgroup memory usage.
// Reports the memory per sandbox both ways and how many such sandboxes 24 GiB holds.
func BenchmarkEngineIdleDensity(b *testing.B) {
	idleDensity(b, gvisor.Class, envInt(b, "BENCH_IDLE_N", 20))
}

// BenchmarkBaselineIdleDensityRunc is BenchmarkEngineIdleDensity with the runc
// runtime class (BENCH_IDLE_RUNC_N sandboxes, default 5): the same engine, daemon
// and template without gVisor's kernel.
func BenchmarkBaselineIdleDensityRunc(b *testing.B) {
	idleDensity(b, runc.Class, envInt(b, "BENCH_IDLE_RUNC_N", 5))
}

func idleDensity(b *testing.B, class string, n int) {
	r := newRig(b)
	ctx := context.Background()
	settle := time.Duration(envInt(b, "BENCH_SETTLE_S", 10)) * time.Second
	rt := r.node.Runtimes[class]
	var hostPer, usages, anons []float64
	round := 0
	for b.Loop() {
		b.StopTimer()
		time.Sleep(2 * time.Second) // let the previous round's memory go
		before := memAvailable(b)
		b.StartTimer()
		ids := make([]string, n)
		for i := range ids {
			s := r.spec(fmt.Sprintf("idle%sr%03di%04d", class, round, i))
			s.RuntimeClass = class
			// One vCPU each: the node admits 16 vCPUs per core, and idle
			// sandboxes of the default two would fill it before memory does.
			s.CPUCount = 1
			ids[i] = s.ID
			r.create(b, s)
		}
		b.StopTimer()
		time.Sleep(settle)
		after := memAvailable(b)
		hostPer = append(hostPer, float64(before-after)/float64(n))
		for _, id := range ids {
			st, err := rt.Stats(ctx, id)
			if err != nil {
				b.Fatalf("stats of %s: %v", id, err)
			}
			usages = append(usages, float64(st.MemoryBytes))
			anons = append(anons, float64(st.MemoryBytes-min(st.MemoryBytes, st.MemoryCacheBytes)))
		}
		for _, id := range ids {
			if err := r.e.Kill(ctx, id); err != nil {
				b.Fatalf("kill %s: %v", id, err)
			}
		}
		round++
		b.StartTimer()
	}
	host := median(hostPer)
	usage := median(usages)
	b.ReportMetric(float64(n), "sandboxes")
	b.ReportMetric(host/(1<<20), "host-MiB-per-sandbox")
	b.ReportMetric(usage/(1<<20), "cgroup-p50-MiB")
	b.ReportMetric(median(anons)/(1<<20), "cgroup-noncache-p50-MiB")
	if host > 0 { // MemAvailable moves with everything else on the machine too
		b.ReportMetric(fit(host), "fit-24GiB-host")
	}
	b.ReportMetric(fit(usage), "fit-24GiB-cgroup")
}

// fit is how many sandboxes of per (> 0) bytes each 24 GiB holds.
func fit(per float64) float64 { return math.Floor(budgetBytes / per) }

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

// memAvailable is the host's MemAvailable in bytes.
func memAvailable(b *testing.B) int64 {
	b.Helper()
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		b.Fatalf("meminfo: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				b.Fatalf("meminfo: %q: %v", sc.Text(), err)
			}
			return kb << 10
		}
	}
	b.Fatalf("meminfo: no MemAvailable line")
	return 0
}
