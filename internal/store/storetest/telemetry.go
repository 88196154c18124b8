package storetest

import (
	"context"
	"math"
	"reflect"
	"slices"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/store"
)

func testMetrics(t *testing.T, e *env) {
	ctx := context.Background()
	db := e.open(t)
	mustInsert(t, db, newSandbox("sb1"), newSandbox("sb2"))
	sec := func(n int) time.Time { return base().Add(time.Duration(n) * time.Second) }
	// Inserted out of order; sb2 gets samples that must not leak into sb1's.
	for _, n := range []int{3, 1, 2, 5, 4} {
		m := store.Metric{Timestamp: sec(n), CPUCount: 2, CPUUsedPct: float64(n) + 0.5,
			MemUsed: int64(n) << 20, MemTotal: 1 << 30, MemCache: 7, DiskUsed: 1 << 31, DiskTotal: 1 << 33}
		if err := db.InsertMetric(ctx, "sb1", m); err != nil {
			t.Fatal(err)
		}
		if err := db.InsertMetric(ctx, "sb2", store.Metric{Timestamp: sec(n)}); err != nil {
			t.Fatal(err)
		}
	}
	wantErr(t, "unknown sandbox", db.InsertMetric(ctx, "nope", store.Metric{Timestamp: sec(1)}), store.ErrNotFound)
	wantErr(t, "NaN", db.InsertMetric(ctx, "sb1", store.Metric{Timestamp: sec(1), CPUUsedPct: math.NaN()}), store.ErrInvalid)

	tests := []struct {
		name       string
		id         string
		start, end time.Time
		want       []int
	}{
		{"unbounded", "sb1", time.Time{}, time.Time{}, []int{1, 2, 3, 4, 5}},
		{"inclusive both ends", "sb1", sec(2), sec(4), []int{2, 3, 4}},
		{"start only", "sb1", sec(4), time.Time{}, []int{4, 5}},
		{"end only", "sb1", time.Time{}, sec(1), []int{1}},
		{"between samples", "sb1", sec(2).Add(time.Millisecond), sec(3).Add(-time.Millisecond), []int{}},
		{"unknown sandbox", "nope", time.Time{}, time.Time{}, []int{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			list, err := db.ListMetrics(ctx, tt.id, tt.start, tt.end)
			if err != nil {
				t.Fatal(err)
			}
			got := []int{}
			for _, m := range list {
				got = append(got, int(m.Timestamp.Sub(base())/time.Second))
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("samples at %v, want %v", got, tt.want)
			}
		})
	}

	list, _ := db.ListMetrics(ctx, "sb1", sec(3), sec(3))
	want := store.Metric{Timestamp: sec(3), CPUCount: 2, CPUUsedPct: 3.5, MemUsed: 3 << 20, MemTotal: 1 << 30,
		MemCache: 7, DiskUsed: 1 << 31, DiskTotal: 1 << 33}
	if len(list) != 1 || !reflect.DeepEqual(list[0], want) {
		t.Fatalf("sample = %+v, want %+v", list, want)
	}

	n, err := db.DeleteMetricsBefore(ctx, sec(3))
	if err != nil || n != 4 { // samples 1 and 2 of both sandboxes
		t.Fatalf("DeleteMetricsBefore = %d, %v; want 4", n, err)
	}
	if list, _ := db.ListMetrics(ctx, "sb1", time.Time{}, time.Time{}); len(list) != 3 || !list[0].Timestamp.Equal(sec(3)) {
		t.Fatalf("after delete: %+v", list)
	}
}

func testEvents(t *testing.T, e *env) {
	ctx := context.Background()
	db := e.open(t)
	mustInsert(t, db, newSandbox("sb1"), newSandbox("sb2"))
	sec := func(n int) time.Time { return base().Add(time.Duration(n) * time.Second) }
	appends := []store.Event{
		{Timestamp: sec(1), Line: "created"}, {Timestamp: sec(2), Line: "running"}, {Timestamp: sec(2), Line: "same time, appended second"},
		{Timestamp: sec(3), Line: "paused"}, {Timestamp: sec(4), Line: "resumed"},
	}
	for _, ev := range appends {
		if err := db.AppendEvent(ctx, "sb1", ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.AppendEvent(ctx, "sb2", store.Event{Timestamp: sec(1), Line: "other"}); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "unknown sandbox", db.AppendEvent(ctx, "nope", store.Event{Timestamp: sec(1), Line: "x"}), store.ErrNotFound)
	_, err := db.ListEvents(ctx, "sb1", time.Time{}, -1)
	wantErr(t, "negative limit", err, store.ErrInvalid)

	e.setClock(db, sec(9))
	if err := db.AppendEvent(ctx, "sb2", store.Event{Line: "no timestamp"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.ListEvents(ctx, "sb2", sec(5), 0); len(got) != 1 || !got[0].Timestamp.Equal(sec(9)) {
		t.Fatalf("event without timestamp stored as %+v, want at %v", got, sec(9))
	}

	tests := []struct {
		name  string
		start time.Time
		limit int
		want  []string
	}{
		{"all", time.Time{}, 0, []string{"created", "running", "same time, appended second", "paused", "resumed"}},
		{"limit", time.Time{}, 2, []string{"created", "running"}},
		{"start inclusive", sec(2), 0, []string{"running", "same time, appended second", "paused", "resumed"}},
		{"start and limit", sec(2), 3, []string{"running", "same time, appended second", "paused"}},
		{"start after last", sec(5), 10, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			list, err := db.ListEvents(ctx, "sb1", tt.start, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			got := []string{}
			for _, e := range list {
				got = append(got, e.Line)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("events %q, want %q", got, tt.want)
			}
		})
	}
}
