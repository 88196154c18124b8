package network

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"
)

// BenchmarkSetupTeardown measures one Setup plus one Teardown and reports
// the median and 90th percentile of each.
func BenchmarkSetupTeardown(b *testing.B) {
	requireRoot(b)
	ctx := context.Background()
	m := newTestManager(b, testConfig(b))
	var setups, teardowns []time.Duration
	i := 0
	for b.Loop() {
		id := fmt.Sprintf("bench%d", i)
		i++
		t0 := time.Now()
		if _, err := m.Setup(ctx, id, Options{AllowInternet: true}); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := m.Teardown(ctx, id); err != nil {
			b.Fatal(err)
		}
		setups, teardowns = append(setups, t1.Sub(t0)), append(teardowns, time.Since(t1))
	}
	report := func(name string, d []time.Duration) {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		b.ReportMetric(float64(d[len(d)/2].Microseconds())/1000, name+"-p50-ms")
		b.ReportMetric(float64(d[len(d)*9/10].Microseconds())/1000, name+"-p90-ms")
	}
	report("setup", setups)
	report("teardown", teardowns)
}
