package controlplane

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/store"
)

// TestLatestMetrics: the newest sample of each of the team's sandboxes,
// running (sampled on demand when none is recent) or paused (what is stored);
// unknown, ended and other teams' sandboxes are left out; CPU is rounded to 2
// decimals and sizes are bytes.
func TestLatestMetrics(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	h.node.SetCPU(0.11203099006278684)
	a := h.create(t, CreateRequest{TemplateID: "big"})
	b := h.create(t, CreateRequest{})
	paused := h.create(t, CreateRequest{})
	killed := h.create(t, CreateRequest{})
	h.svc.sampleOnce(ctx)
	if err := h.svc.Pause(ctx, defTeam, paused.ID); err != nil {
		t.Fatal(err)
	}
	if err := h.svc.Kill(ctx, defTeam, killed.ID); err != nil {
		t.Fatal(err)
	}
	other, err := CreateTeam(ctx, h.db, "other", "Other", store.QuotaSettings{})
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := h.svc.Create(ctx, other.ID, CreateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(time.Hour) // nothing recent: running ones are sampled now
	h.node.SetCPU(33.333333)
	got, err := h.svc.LatestMetrics(ctx, defTeam, []string{a.ID, b.ID, paused.ID, killed.ID, theirs.ID, "unknown", "../x"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("metrics for %d sandboxes, want a, b and the paused one: %v", len(got), got)
	}
	now := h.clock.Now()
	for _, c := range []struct {
		id   string
		pct  float64
		when time.Time
		mem  int64
	}{
		{a.ID, 33.33, now, 1024 << 20},
		{b.ID, 33.33, now, 512 << 20},
		{paused.ID, 0.11, now.Add(-time.Hour), 512 << 20},
	} {
		m, ok := got[c.id]
		if !ok || m.CPUUsedPct != c.pct || !m.Timestamp.Equal(c.when) || m.MemTotal != c.mem {
			t.Errorf("%s: %+v (%v), want cpu %v at %v, memTotal %d bytes", c.id, m, ok, c.pct, c.when, c.mem)
		}
	}
	if got, err := h.svc.LatestMetrics(ctx, defTeam, nil); err != nil || len(got) != 0 {
		t.Errorf("no ids: %v %v", got, err)
	}
	ids := make([]string, MaxMetricsSandboxes+1)
	for i := range ids {
		ids[i] = fmt.Sprintf("sb%018d", i)
	}
	if _, err := h.svc.LatestMetrics(ctx, defTeam, ids); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("%d ids: %v, want invalid argument", len(ids), err)
	}
}

// TestCPURounding: samples keep E2B's 2 decimals.
func TestCPURounding(t *testing.T) {
	for _, c := range []struct{ in, want float64 }{{0.11203099006278684, 0.11}, {12.346, 12.35}, {99.999, 100}, {0, 0}, {0.004, 0}} {
		if got := roundPct(c.in); got != c.want {
			t.Errorf("roundPct(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}
