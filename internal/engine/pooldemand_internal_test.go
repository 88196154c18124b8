package engine

import (
	"testing"
	"time"
)

func TestPeak(t *testing.T) {
	at := func(secs ...int) []time.Time {
		var out []time.Time
		for _, s := range secs {
			out = append(out, time.Unix(int64(s), 0))
		}
		return out
	}
	cases := []struct {
		name  string
		times []time.Time
		want  int
	}{
		{"none", nil, 0},
		{"one", at(5), 1},
		{"a burst", at(1, 1, 1, 2, 2), 5},
		{"spread wider than the window", at(0, 40, 80, 120), 1},
		{"the densest window wins", at(0, 100, 101, 102, 200), 3},
		{"the window's end is exclusive", at(0, 30), 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := peak(tc.times, demandWindow); got != tc.want {
				t.Fatalf("peak = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestPoolTargets: a pool's target follows the peak of its recent creates,
// within its configured size below and Options.WarmMax above, and demand ages
// out after demandHorizon.
func TestPoolTargets(t *testing.T) {
	base := Spec{TemplateID: "base", RootfsPath: "/t/base", RuntimeClass: "gvisor", CPUCount: 1, MemoryMB: 256}
	other := Spec{TemplateID: "py", RootfsPath: "/t/py", RuntimeClass: "gvisor", CPUCount: 2, MemoryMB: 512}
	now := time.Unix(10_000, 0)
	burst := func(n int, at time.Time) []time.Time {
		out := make([]time.Time, n)
		for i := range out {
			out[i] = at
		}
		return out
	}
	cases := []struct {
		name    string
		max     int
		creates map[string][]time.Time // by template
		want    map[string]int         // targets by template; absent: no pool
	}{
		{"idle: the configured size", 10, nil, map[string]int{"base": 2}},
		{"a burst grows the pool", 10, map[string][]time.Time{"base": burst(7, now)}, map[string]int{"base": 7}},
		{"never past the ceiling", 5, map[string][]time.Time{"base": burst(12, now)}, map[string]int{"base": 5}},
		{"never below the configured size", 10, map[string][]time.Time{"base": burst(1, now)}, map[string]int{"base": 2}},
		{"old demand is forgotten", 10, map[string][]time.Time{"base": burst(9, now.Add(-demandHorizon-time.Second))}, map[string]int{"base": 2}},
		{"an unconfigured template gets a pool", 10, map[string][]time.Time{"py": burst(3, now)}, map[string]int{"base": 2, "py": 3}},
		{"no ceiling: only configured sizes", 0, map[string][]time.Time{"base": burst(4, now)}, map[string]int{"base": 2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := &Engine{opts: Options{WarmMax: tc.max, DefaultClass: "gvisor", Warm: []WarmPool{{Spec: base, Size: 2}}},
				demand: map[string]*poolDemand{}, warm: map[string][]*box{}}
			for tmpl, times := range tc.creates {
				s := base
				if tmpl == "py" {
					s = other
				}
				s.ID, s.AccessToken = "x", "tok"
				for _, at := range times {
					e.noteCreateLocked(s, at)
				}
			}
			got := map[string]int{}
			for _, tg := range e.targetsLocked(now) {
				if tg.want > 0 {
					got[tg.spec.TemplateID] = tg.want
				}
				if tg.spec.ID != "" || tg.spec.AccessToken != "" {
					t.Fatalf("pool spec keeps a create's identity: %+v", tg.spec)
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("targets %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Fatalf("targets %v, want %v", got, tc.want)
				}
			}
		})
	}
}

// TestPlanPoolsSettle: right after a create took a pooled sandbox, a pool at
// least half full waits for refillSettle before booting, and one below half
// boots at once.
func TestPlanPoolsSettle(t *testing.T) {
	base := Spec{TemplateID: "base", RootfsPath: "/t/base", RuntimeClass: "gvisor", CPUCount: 1, MemoryMB: 256}
	now := time.Unix(10_000, 0)
	cases := []struct {
		name       string
		size, have int
		settling   bool
		wantStarts int
		wantWake   bool
	}{
		{"quiet: fills the pool", 4, 1, false, 3, false},
		{"settling, half full: waits", 4, 2, true, 0, true},
		{"settling, below half: boots", 4, 1, true, 3, false},
		{"settling, empty pool of one: boots", 1, 0, true, 1, false},
		{"settling, full: nothing to do", 2, 2, true, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := &Engine{opts: Options{DefaultClass: "gvisor", Warm: []WarmPool{{Spec: base, Size: tc.size}}},
				demand: map[string]*poolDemand{}, warm: map[string][]*box{}, poolBooting: map[string]int{}, poolRetry: map[string]backoff{}}
			key := poolKey(e.withClass(warmSpec(base)))
			for i := 0; i < tc.have; i++ {
				e.warm[key] = append(e.warm[key], &box{rec: &record{Spec: base}})
			}
			if tc.settling {
				e.settleUntil = now.Add(refillSettle / 2)
			}
			starts, excess, wake := e.planPools(now, 10)
			if len(starts) != tc.wantStarts || len(excess) != 0 {
				t.Fatalf("%d starts and %d excess, want %d and 0", len(starts), len(excess), tc.wantStarts)
			}
			if got := !wake.IsZero(); got != tc.wantWake {
				t.Fatalf("wake %v, want one: %v", wake, tc.wantWake)
			}
			if tc.wantWake && !wake.Equal(e.settleUntil) {
				t.Fatalf("wake %v, want the end of the settling %v", wake, e.settleUntil)
			}
		})
	}
}
