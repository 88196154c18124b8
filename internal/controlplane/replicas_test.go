package controlplane

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"lelantos.dev/lelantos/internal/controlplane/controlplanetest"
	agentv1 "lelantos.dev/lelantos/internal/gen/agent/v1"
	"lelantos.dev/lelantos/internal/store"
	"lelantos.dev/lelantos/internal/store/pgtest"
)

// TestMain stops the PostgreSQL server the replica tests started.
func TestMain(m *testing.M) { pgtest.Main(m) }

// countingNode is the shared node as one replica reaches it, counting that
// replica's metrics samples.
type countingNode struct {
	*controlplanetest.Node
	samples atomic.Int64
}

func (n *countingNode) SandboxMetrics(ctx context.Context, req *connect.Request[agentv1.SandboxMetricsRequest]) (*connect.Response[agentv1.SandboxMetricsResponse], error) {
	n.samples.Add(1)
	return n.Node.SandboxMetrics(ctx, req)
}

// replicas are control-plane Services on one PostgreSQL database (each with
// its own connection pool, as two processes have) and one node.
type replicas struct {
	svcs  []*Service
	dbs   []*store.DB
	nodes []*countingNode
	node  *controlplanetest.Node
}

// newReplicas starts n Services on a new PostgreSQL database with the
// template "base", configured by tune.
func newReplicas(t *testing.T, n int, tune func(*Config)) *replicas {
	t.Helper()
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	r := &replicas{node: controlplanetest.NewNode()}
	for i := range n {
		db, err := store.Open(ctx, url)
		if err != nil {
			t.Fatalf("open store: %v", err)
		}
		t.Cleanup(func() { db.Close() })
		if i == 0 {
			if err := db.PutTemplate(ctx, &store.Template{ID: "base", Status: store.TemplateReady, Public: true}); err != nil {
				t.Fatal(err)
			}
		}
		cfg := Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
		if tune != nil {
			tune(&cfg)
		}
		node := &countingNode{Node: r.node}
		svc, err := New(cfg, db, node)
		if err != nil {
			t.Fatal(err)
		}
		r.svcs, r.dbs, r.nodes = append(r.svcs, svc), append(r.dbs, db), append(r.nodes, node)
	}
	return r
}

// TestReplicasSerializeOperations: two replicas on one PostgreSQL database
// race lifecycle calls on one sandbox; the node never sees two operations on
// it at once.
func TestReplicasSerializeOperations(t *testing.T) {
	ctx := context.Background()
	r := newReplicas(t, 2, nil)
	r.node.SetDelay(15 * time.Millisecond) // node calls last long enough to meet
	sb, err := r.svcs[0].Create(ctx, defTeam, CreateRequest{TemplateID: "base"})
	if err != nil {
		t.Fatal(err)
	}
	const rounds = 12
	var wg sync.WaitGroup
	for i := range 4 {
		svc := r.svcs[i%2]
		wg.Go(func() {
			for j := range rounds {
				var err error
				switch (i + j) % 4 {
				case 0:
					err = svc.Pause(ctx, defTeam, sb.ID)
				case 1:
					_, err = svc.Resume(ctx, defTeam, sb.ID, ResumeRequest{})
				case 2:
					_, _, err = svc.Connect(ctx, defTeam, sb.ID, time.Minute)
				default:
					err = svc.UpdateNetwork(ctx, defTeam, sb.ID, NetworkUpdate{})
				}
				// A call may find the sandbox in the state another left it.
				if err != nil && !errors.Is(err, ErrConflict) {
					t.Errorf("replica %d, call %d: %v", i%2, j, err)
				}
			}
		})
	}
	wg.Wait()
	if n := r.node.Overlaps(); n != 0 {
		t.Fatalf("the node saw %d operations on the sandbox overlap", n)
	}
	if r.node.Calls(controlplanetest.OpPause) == 0 || r.node.Calls(controlplanetest.OpResume) == 0 {
		t.Fatalf("the race made %d pauses and %d resumes; want some of each",
			r.node.Calls(controlplanetest.OpPause), r.node.Calls(controlplanetest.OpResume))
	}
	if err := r.svcs[1].Kill(ctx, defTeam, sb.ID); err != nil {
		t.Fatal(err)
	}
	for i, db := range r.dbs {
		if _, err := db.GetLease(ctx, opLeasePrefix+sb.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("replica %d: the sandbox's lease is left: %v", i, err)
		}
	}
}

// TestReplicasWithoutStoreLeasesOverlap shows what the test above guards
// against: replicas serialized by their own in-process lock only (a store
// that grants every lease) run operations on one sandbox at once.
func TestReplicasWithoutStoreLeasesOverlap(t *testing.T) {
	ctx := context.Background()
	r := newReplicas(t, 2, nil)
	for _, svc := range r.svcs {
		svc.locks.leases = grantAll{}
	}
	r.node.SetDelay(15 * time.Millisecond)
	sb, err := r.svcs[0].Create(ctx, defTeam, CreateRequest{TemplateID: "base"})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			for range 20 {
				if r.node.Overlaps() > 0 {
					return
				}
				_ = r.svcs[i].UpdateNetwork(ctx, defTeam, sb.ID, NetworkUpdate{})
			}
		})
	}
	wg.Wait()
	if r.node.Overlaps() == 0 {
		t.Fatal("replicas without store leases never overlapped: the overlap test proves nothing")
	}
}

// grantAll is a LeaseStore that grants every lease to everyone.
type grantAll struct{}

func (grantAll) AcquireLease(context.Context, string, string, time.Duration) (bool, error) {
	return true, nil
}
func (grantAll) ReleaseLease(context.Context, string, string) error { return nil }
func (grantAll) DeleteExpiredLeases(context.Context) (int64, error) { return 0, nil }

// TestReplicasHandOverBackgroundDuties: of two running replicas, one samples
// (runs the background duties) at a time; when it stops, the other takes over
// at once, and a replica that died holding the lease is taken over from once
// the lease expires.
func TestReplicasHandOverBackgroundDuties(t *testing.T) {
	const ttl = 600 * time.Millisecond
	ctx := context.Background()
	r := newReplicas(t, 2, func(c *Config) {
		c.LeaseTTL = ttl
		c.MetricsInterval = 20 * time.Millisecond
		c.ReaperInterval = 20 * time.Millisecond
	})
	if _, err := r.svcs[0].Create(ctx, defTeam, CreateRequest{TemplateID: "base"}); err != nil {
		t.Fatal(err)
	}
	run := func(i int) (stop func()) {
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = r.svcs[i].Run(rctx) }()
		return func() { cancel(); <-done }
	}
	// waitSampling waits until replica i samples, and fails after limit.
	waitSampling := func(i int, limit time.Duration) time.Duration {
		t.Helper()
		start, from := time.Now(), r.nodes[i].samples.Load()
		for r.nodes[i].samples.Load() == from {
			if time.Since(start) > limit {
				t.Fatalf("replica %d did not take over the background duties within %s", i, limit)
			}
			time.Sleep(5 * time.Millisecond)
		}
		return time.Since(start)
	}

	stopA := run(0)
	waitSampling(0, 5*time.Second)
	stopB := run(1)
	// Both run; only A samples, over several lease lifetimes.
	before := r.nodes[1].samples.Load()
	time.Sleep(3 * ttl)
	if n := r.nodes[1].samples.Load() - before; n != 0 {
		t.Fatalf("replica B sampled %d times while A held the duties", n)
	}
	if l, err := r.dbs[0].GetLease(ctx, backgroundLease); err != nil || l.Holder != r.svcs[0].replica {
		t.Fatalf("the background lease: %+v, %v; want A's", l, err)
	}
	// A stops and releases the lease: B takes over within a renewal period.
	stopA()
	waitSampling(1, ttl)
	stopB()

	// A replica that died holding the lease (it never released it).
	taken := time.Now()
	if ok, err := r.dbs[0].AcquireLease(ctx, backgroundLease, "replica-that-died", ttl); err != nil || !ok {
		t.Fatalf("take the lease as a dead replica: %v, %v", ok, err)
	}
	from := r.nodes[0].samples.Load()
	stopA = run(0)
	defer stopA()
	waitSampling(0, ttl+5*time.Second)
	if since := time.Since(taken); since < ttl {
		t.Fatalf("replica A took over after %s, before the dead replica's lease of %s expired", since, ttl)
	}
	if r.nodes[0].samples.Load() == from {
		t.Fatal("replica A never sampled")
	}
}
