package engine

import (
	"slices"
	"time"
)

// How a pool's size follows demand. Every create that a pool could serve (one
// without volumes, not from a snapshot) counts for the pool of its template and
// shape, whether it took a pooled sandbox or not. A pool's target is the largest
// number of such creates seen within any demandWindow of the last demandHorizon,
// at most Options.WarmMax (the operator's ceiling), and at least the Size it was
// configured with. So a burst of ten creates grows the pool to ten for the next
// burst, steady creates keep it at the ceiling, and a pool nobody creates from
// shrinks back to its configured size (a pool that only demand made goes away)
// demandHorizon after its last create.
const (
	demandWindow  = 30 * time.Second
	demandHorizon = 10 * time.Minute
	// maxDemandTimes bounds the create times kept per pool.
	maxDemandTimes = 4096
	// demandTick is how often the filler looks at the pools without being woken,
	// so that pools shrink as their demand ages.
	demandTick = 5 * time.Second
)

// poolDemand is what the engine knows of one pool key's demand.
type poolDemand struct {
	// spec is what the pool's sandboxes are booted from: the first create's spec
	// without its identity, token, environment and start command.
	spec Spec
	// creates are the times of its recent creates, oldest first.
	creates []time.Time
}

// poolable reports whether a create of s may take, and so counts for, a pooled
// sandbox.
func poolable(s Spec) bool { return len(s.VolumeMounts) == 0 && s.Snapshot == "" }

// warmSpec is s stripped of what a pooled sandbox is booted without.
func warmSpec(s Spec) Spec {
	s.ID, s.AccessToken, s.EnvVars, s.StartCmd = "", "", nil, ""
	s.DefaultUser, s.DefaultWorkdir, s.Egress = "", "", nil
	return s
}

// noteCreateLocked counts a create of s for its pool, and forgets the pools
// that demand made for another version (tree or snapshot) of its template.
// Call with e.mu held.
func (e *Engine) noteCreateLocked(s Spec, now time.Time) {
	key := poolKey(s)
	if e.opts.WarmMax <= 0 {
		if _, ok := e.floorLocked(key); !ok {
			return
		}
	}
	d := e.demand[key]
	if d == nil {
		d = &poolDemand{spec: warmSpec(s)}
		e.demand[key] = d
		for k, o := range e.demand {
			if _, configured := e.floorLocked(k); !configured && k != key && o.spec.TemplateID == s.TemplateID &&
				(o.spec.RootfsPath != s.RootfsPath || o.spec.SnapshotImage != s.SnapshotImage) {
				delete(e.demand, k)
			}
		}
	}
	d.creates = append(d.creates, now)
	if len(d.creates) > maxDemandTimes {
		d.creates = slices.Delete(d.creates, 0, len(d.creates)-maxDemandTimes)
	}
}

// floorLocked is the configured size of the pool of key, and whether one is
// configured. Call with e.mu held.
func (e *Engine) floorLocked(key string) (int, bool) {
	for _, p := range e.opts.Warm {
		if poolKey(e.withClass(p.Spec)) == key {
			return p.Size, true
		}
	}
	return 0, false
}

// withClass fills in the default runtime class.
func (e *Engine) withClass(s Spec) Spec {
	if s.RuntimeClass == "" {
		s.RuntimeClass = e.opts.DefaultClass
	}
	return s
}

// peak is the largest number of times within any window of length w.
func peak(times []time.Time, w time.Duration) int {
	best, lo := 0, 0
	for hi := range times {
		for times[hi].Sub(times[lo]) >= w {
			lo++
		}
		best = max(best, hi-lo+1)
	}
	return best
}

// poolTarget is what a pool aims at: see demandWindow.
type poolTarget struct {
	key  string
	spec Spec
	want int
}

// targetsLocked ages the demand and returns every pool's target, configured
// pools first. Call with e.mu held.
func (e *Engine) targetsLocked(now time.Time) []poolTarget {
	var out []poolTarget
	seen := map[string]bool{}
	for _, p := range e.opts.Warm {
		s := e.withClass(p.Spec)
		key := poolKey(s)
		if seen[key] {
			continue
		}
		seen[key] = true
		want := p.Size
		if d := e.demand[key]; d != nil {
			want = max(want, min(e.demandOf(d, now), e.opts.WarmMax))
		}
		out = append(out, poolTarget{key: key, spec: s, want: want})
	}
	for key, d := range e.demand {
		if seen[key] {
			continue
		}
		n := min(e.demandOf(d, now), e.opts.WarmMax)
		if n <= 0 {
			delete(e.demand, key)
			out = append(out, poolTarget{key: key, spec: d.spec})
			continue
		}
		out = append(out, poolTarget{key: key, spec: d.spec, want: n})
	}
	// Sandboxes of pools nothing wants any more.
	for key, pool := range e.warm {
		if !seen[key] && e.demand[key] == nil && len(pool) > 0 && !slices.ContainsFunc(out, func(t poolTarget) bool { return t.key == key }) {
			out = append(out, poolTarget{key: key, spec: pool[0].rec.Spec})
		}
	}
	return out
}

// demandOf drops d's creates older than demandHorizon and returns its peak.
func (e *Engine) demandOf(d *poolDemand, now time.Time) int {
	i := 0
	for i < len(d.creates) && now.Sub(d.creates[i]) > demandHorizon {
		i++
	}
	d.creates = d.creates[i:]
	return peak(d.creates, demandWindow)
}
