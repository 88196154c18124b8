package engine_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/engine"
	"lelantos.dev/lelantos/internal/engine/enginetest"
	"lelantos.dev/lelantos/internal/runtime"
)

// countingStarts wraps a real runtime and records the ids it starts cold.
type countingStarts struct {
	runtime.Runtime
	mu  sync.Mutex
	ids []string
}

func (c *countingStarts) Start(ctx context.Context, id string, cfg runtime.Config) error {
	c.mu.Lock()
	c.ids = append(c.ids, id)
	c.mu.Unlock()
	return c.Runtime.Start(ctx, id, cfg)
}

// coldCreates are the starts of sandboxes that were not booted for a pool.
func (c *countingStarts) coldCreates() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, id := range c.ids {
		if !strings.HasPrefix(id, "warm") {
			out = append(out, id)
		}
	}
	return out
}

// A burst of creates grows the pool of their template and shape, up to
// Options.WarmMax, so that the next burst is served from it without a cold boot.
func TestWarmPoolFollowsBursts(t *testing.T) {
	node := enginetest.NewNode(t, "10.232.91.0/24")
	rt := &countingStarts{Runtime: node.Runtimes["gvisor"]}
	pooled := newSpec(t, "")
	const burst = 4
	e := node.EngineWith(t, func(o *engine.Options) {
		o.Runtimes = map[string]runtime.Runtime{"gvisor": rt}
		o.Warm = []engine.WarmPool{{Spec: pooled, Size: 1}}
		o.WarmMax = burst
	})
	waitWarm(t, e, 1)
	run := func(round int) {
		var wg sync.WaitGroup
		for i := range burst {
			wg.Go(func() {
				st := create(t, e, newSpec(t, fmt.Sprintf("burst%d%d", round, i)))
				must(t, st, "true")
			})
		}
		wg.Wait()
	}
	run(1)
	if cold := len(rt.coldCreates()); cold != burst-1 {
		t.Fatalf("first burst: %d cold boots, want %d (one from the pool of 1)", cold, burst-1)
	}
	waitWarm(t, e, burst) // grown to the burst, within WarmMax
	time.Sleep(200 * time.Millisecond)
	if got := e.Warm(); got != burst {
		t.Fatalf("pool holds %d after the burst, want %d", got, burst)
	}
	run(2)
	if cold := rt.coldCreates(); len(cold) != burst-1 {
		t.Fatalf("second burst booted cold: %v", cold[burst-1:])
	}
	pools := e.Pools()
	if len(pools) != 1 || pools[0].Target != burst {
		t.Fatalf("pools %+v, want one with target %d", pools, burst)
	}
	waitWarm(t, e, burst) // refilled ahead of the next burst
}
