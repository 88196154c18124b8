package store

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// BenchmarkListSandboxes10k lists a page of 100 out of 10,000 sandboxes,
// with and without filters, and reports the median latency as p50-µs.
func BenchmarkListSandboxes10k(b *testing.B) {
	const total = 10_000
	ctx := context.Background()
	db := openTestDB(b)
	sbs := make([]*Sandbox, 0, total)
	for i := range total {
		s := newSandbox(fmt.Sprintf("sbx%05d", (i*7919)%total)) // IDs not in start order
		s.StartedAt = base().Add(time.Duration(i) * time.Millisecond)
		switch {
		case i%10 < 7:
			s.State = StateRunning
		case i%10 < 9:
			s.State = StatePaused
		default:
			s.State = StateKilled
		}
		env := "dev"
		if i%2 == 0 {
			env = "prod"
		}
		s.Metadata = map[string]string{
			"team": fmt.Sprintf("team %d", i%10), "user": fmt.Sprintf("user-%d", i), "env": env,
		}
		sbs = append(sbs, s)
	}
	bulkInsert(b, db, sbs)
	// Refresh planner statistics as Close and long-running servers do.
	if _, err := db.sql.Exec("PRAGMA optimize"); err != nil {
		b.Fatal(err)
	}
	// A cursor 9,000 rows into the unfiltered ascending order.
	_, deep, err := db.ListSandboxes(ctx, SandboxFilter{Limit: 9000})
	if err != nil || deep == "" {
		b.Fatalf("deep cursor: %q, %v", deep, err)
	}

	cases := []struct {
		name      string
		f         SandboxFilter
		wantItems int
	}{
		{"no-filter", SandboxFilter{}, 100},
		{"running", SandboxFilter{States: []string{StateRunning}}, 100},
		{"running+paused-desc", SandboxFilter{States: []string{StateRunning, StatePaused}, Descending: true}, 100},
		{"metadata", SandboxFilter{Metadata: map[string]string{"team": "team 3"}}, 100},
		{"metadata-2pairs-running", SandboxFilter{
			States: []string{StateRunning}, Metadata: map[string]string{"team": "team 4", "env": "prod"}}, 100},
		{"metadata-1-match", SandboxFilter{Metadata: map[string]string{"user": "user-4242"}}, 1},
		{"metadata-no-match", SandboxFilter{Metadata: map[string]string{"team": "nobody"}}, 0},
		{"deep-cursor", SandboxFilter{Cursor: deep}, 100},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			f := c.f
			f.Limit = 100
			var lat []time.Duration
			for b.Loop() {
				t0 := time.Now()
				items, _, err := db.ListSandboxes(ctx, f)
				lat = append(lat, time.Since(t0))
				if err != nil || len(items) != c.wantItems {
					b.Fatalf("%d items, %v; want %d", len(items), err, c.wantItems)
				}
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		})
	}
}

// BenchmarkInsertSandbox measures one durable (fsynced) sandbox insert.
func BenchmarkInsertSandbox(b *testing.B) {
	db := openTestDB(b)
	i := 0
	for b.Loop() {
		s := newSandbox(fmt.Sprintf("sbx%08d", i))
		i++
		if err := db.InsertSandbox(context.Background(), s); err != nil {
			b.Fatal(err)
		}
	}
}
