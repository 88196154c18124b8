package store_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/controlplane"
	"lelantos.dev/lelantos/internal/controlplane/controlplanetest"
	"lelantos.dev/lelantos/internal/store"
	"lelantos.dev/lelantos/internal/store/pgtest"
)

// benchBackends are the stores benchmarks compare, both durable.
var benchBackends = []struct {
	name     string
	location func(testing.TB) string
}{
	{"sqlite", func(tb testing.TB) string { return filepath.Join(tb.TempDir(), "lelantos.db") }},
	{"postgres", pgtest.NewDurableDatabase},
}

// BenchmarkOperationLease measures what the control plane adds to every
// operation on a sandbox to serialize it across replicas: taking the
// sandbox's lease and releasing it, uncontended.
func BenchmarkOperationLease(b *testing.B) {
	for _, backend := range benchBackends {
		b.Run(backend.name, func(b *testing.B) {
			ctx := context.Background()
			db, err := store.Open(ctx, backend.location(b))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			for b.Loop() {
				if ok, err := db.AcquireLease(ctx, "op/sbx", "replica", time.Minute); err != nil || !ok {
					b.Fatalf("acquire: %v, %v", ok, err)
				}
				if err := db.ReleaseLease(ctx, "op/sbx", "replica"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkControlPlaneCreate measures a sandbox create, then its kill,
// through the control plane (admission, the operation's lease, the records
// and events it writes) on each store, with a node that answers at once, so that the
// figures are the store's share of a create. Both stores are durable: SQLite
// with synchronous=FULL, PostgreSQL with fsync and synchronous commits. It
// reports the median and the 99th percentile of each.
func BenchmarkControlPlaneCreate(b *testing.B) {
	for _, backend := range benchBackends {
		b.Run(backend.name, func(b *testing.B) {
			ctx := context.Background()
			db, err := store.Open(ctx, backend.location(b))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			if err := db.PutTemplate(ctx, &store.Template{ID: "base", Status: store.TemplateReady, Public: true}); err != nil {
				b.Fatal(err)
			}
			svc, err := controlplane.New(controlplane.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
				db, controlplanetest.NewNode())
			if err != nil {
				b.Fatal(err)
			}
			var create, kill []time.Duration
			for b.Loop() {
				t0 := time.Now()
				sb, err := svc.Create(ctx, store.DefaultTeamID, controlplane.CreateRequest{TemplateID: "base"})
				if err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if err := svc.Kill(ctx, store.DefaultTeamID, sb.ID); err != nil {
					b.Fatal(err)
				}
				create, kill = append(create, t1.Sub(t0)), append(kill, time.Since(t1))
			}
			report(b, "create", create)
			report(b, "kill", kill)
		})
	}
}

// report adds the median and the 99th percentile of the latencies of op to
// b's results.
func report(b *testing.B, op string, lat []time.Duration) {
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), op+"-p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), op+"-p99-µs")
}
