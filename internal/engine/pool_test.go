package engine_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/engine"
	"lelantos.dev/lelantos/internal/engine/enginetest"
	"lelantos.dev/lelantos/internal/runtime"
	"lelantos.dev/lelantos/internal/runtime/cgroups"
	"lelantos.dev/lelantos/internal/runtime/oci"
)

// waitWarm waits until the engine's pools hold want ready sandboxes.
func waitWarm(t *testing.T, e *engine.Engine, want int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for e.Warm() != want {
		if time.Now().After(deadline) {
			t.Fatalf("warm pool holds %d sandboxes, want %d", e.Warm(), want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestWarmPool(t *testing.T) {
	node := enginetest.NewNode(t, "10.232.8.0/24")
	pooled := newSpec(t, "")
	withPool := func(o *engine.Options) { o.Warm = []engine.WarmPool{{Spec: pooled, Size: 2}} }
	e := node.EngineWith(t, withPool)
	ctx := context.Background()
	waitWarm(t, e, 2)
	if got := len(e.List()); got != 0 {
		t.Fatalf("List shows %d sandboxes: pooled ones must not be listed", got)
	}
	pool := pooledIDs(t, node)
	for _, id := range pool {
		if ok, got := hasCPUWeight(t, id, runtime.CPUWeightBackground); !ok {
			t.Errorf("pooled sandbox %s has cpu weight %d, want the background weight (%d shares)", id, got, runtime.CPUWeightBackground)
		}
	}

	// A matching create takes a pooled sandbox and gives it its own identity.
	s := newSpec(t, "poolaaaaaaaaaaaaaaa1")
	s.EnvVars = map[string]string{"POOLED": "yes"}
	start := time.Now()
	st := create(t, e, s)
	took := time.Since(start)
	if got := must(t, st, "echo $POOLED"); got != "yes" {
		t.Fatalf("env from create: %q", got)
	}
	if r, err := sh(ctx, st.Address, "wrong-token", "true"); err == nil && r.Code == 0 {
		t.Fatal("the pooled sandbox accepts a wrong token")
	}
	t.Logf("create from the pool took %v", took)
	taken := 0
	for _, id := range pool {
		rec, err := os.ReadFile(filepath.Join(node.DataDir, "sandboxes", id, "record.json"))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(rec), s.ID) {
			taken++
			if ok, got := hasCPUWeight(t, id, runtime.CPUWeightNormal); !ok {
				t.Errorf("the sandbox a create took from the pool runs at cpu weight %d, want the normal weight (%d shares)", got, runtime.CPUWeightNormal)
			}
		}
	}
	if taken != 1 {
		t.Errorf("%d of the pooled sandboxes %v became %s, want 1", taken, pool, s.ID)
	}
	waitWarm(t, e, 2) // refilled

	// A create that does not match (other memory) boots one.
	other := newSpec(t, "poolaaaaaaaaaaaaaaa2")
	other.MemoryMB = 384
	st2 := create(t, e, other)
	must(t, st2, "true")
	if e.Warm() != 2 {
		t.Fatal("a non-matching create took a pooled sandbox")
	}

	// Pause and resume work on a sandbox that came from the pool.
	must(t, st, counterCmd)
	n := waitCounter(t, st, 3)
	if _, err := e.Pause(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	st, err := e.Resume(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := waitCounter(t, st, n+1); got <= n {
		t.Fatalf("counter %d after resume, was %d", got, n)
	}

	// A restarted node re-adopts its pool and its pooled-then-taken sandbox.
	e.Close()
	e = node.EngineWith(t, withPool)
	waitWarm(t, e, 2)
	if got, err := e.Get(s.ID); err != nil || got.State != engine.StateRunning {
		t.Fatalf("after restart: %+v %v", got, err)
	}
	must(t, st, "true")

	// Draining the pools and killing the sandboxes leaves no sandbox directory.
	if err := e.DrainPools(ctx); err != nil {
		t.Fatal(err)
	}
	killed(t, e, s.ID)
	killed(t, e, other.ID)
	if e.Warm() != 0 {
		t.Fatalf("%d pooled sandboxes after draining", e.Warm())
	}
	left, _ := os.ReadDir(filepath.Join(node.DataDir, "sandboxes"))
	if len(left) != 0 {
		t.Fatalf("sandbox directories left: %v", left)
	}
	infos, _ := node.Runtimes["gvisor"].List(ctx)
	for _, i := range infos {
		if strings.HasPrefix(i.ID, "warm") {
			t.Errorf("runtime still holds pooled sandbox %s", i.ID)
		}
	}
}

// pooledIDs lists the runtime ids of the pooled sandboxes the node runs.
func pooledIDs(t *testing.T, node *enginetest.Node) []string {
	t.Helper()
	infos, err := node.Runtimes["gvisor"].List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, i := range infos {
		if strings.HasPrefix(i.ID, "warm") {
			ids = append(ids, i.ID)
		}
	}
	return ids
}

// hasCPUWeight reports whether runtime sandbox id's cgroup on the host has the
// weight of shares (runtime.CPUWeight*), and the weight it has.
func hasCPUWeight(t *testing.T, id string, shares uint64) (bool, uint64) {
	t.Helper()
	h := cgroups.Detect("")
	got, err := h.CPUWeight(oci.CgroupPath(id))
	if err != nil {
		t.Fatal(err)
	}
	return got == h.CPUWeightFor(shares), got
}

// failingStarts wraps a real runtime and fails its first n Starts, as a missing
// binary or a full disk would.
type failingStarts struct {
	runtime.Runtime
	mu sync.Mutex
	n  int
}

func (f *failingStarts) Start(ctx context.Context, id string, cfg runtime.Config) error {
	f.mu.Lock()
	fail := f.n > 0
	f.n--
	f.mu.Unlock()
	if fail {
		return errors.New("start refused on purpose")
	}
	return f.Runtime.Start(ctx, id, cfg)
}

// A warm-pool boot that fails is cleaned up, logged and retried; the engine keeps
// running and the pool fills once boots work again.
func TestWarmPoolBootFailureRetries(t *testing.T) {
	node := enginetest.NewNode(t, "10.232.9.0/24")
	flaky := &failingStarts{Runtime: node.Runtimes["gvisor"], n: 3}
	e := node.EngineWith(t, func(o *engine.Options) {
		o.Runtimes = map[string]runtime.Runtime{"gvisor": flaky}
		o.Warm = []engine.WarmPool{{Spec: newSpec(t, ""), Size: 1}}
		o.WarmRetry = 10 * time.Millisecond
	})
	waitWarm(t, e, 1)
	flaky.mu.Lock()
	left := flaky.n
	flaky.mu.Unlock()
	if left > 0 {
		t.Fatalf("pool filled with %d failures still to come", left)
	}
	dirs, _ := os.ReadDir(filepath.Join(node.DataDir, "sandboxes"))
	if len(dirs) != 1 {
		t.Fatalf("%d sandbox directories after 3 failed boots and one good one, want 1", len(dirs))
	}
	if err := e.DrainPools(context.Background()); err != nil {
		t.Fatal(err)
	}
}
