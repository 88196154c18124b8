package controlplane

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/controlplane/controlplanetest"
	"lelantos.dev/lelantos/internal/proxy"
)

func TestMetrics(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	sb := h.create(t, CreateRequest{TemplateID: "big"})

	// No sample yet: one is taken on demand.
	ms, err := h.svc.Metrics(ctx, defTeam, sb.ID, time.Time{}, time.Time{})
	if err != nil || len(ms) != 1 {
		t.Fatalf("metrics of a fresh sandbox: %v %v, want one on-demand sample", ms, err)
	}
	if ms[0].CPUCount != 4 || ms[0].MemTotal != 1024<<20 || ms[0].CPUUsedPct != 12.5 {
		t.Errorf("sample %+v does not carry the node's values", ms[0])
	}
	h.svc.sampleOnce(ctx)
	h.svc.sampleOnce(ctx)
	all, err := h.svc.Metrics(ctx, defTeam, sb.ID, time.Time{}, time.Time{})
	if err != nil || len(all) != 3 {
		t.Fatalf("after two sampler passes: %d samples (%v), want 3", len(all), err)
	}
	// A window before any sample: nothing stored there, and no on-demand
	// sample is taken for a window that ended.
	past := all[0].Timestamp.Add(-time.Hour)
	got, err := h.svc.Metrics(ctx, defTeam, sb.ID, past.Add(-time.Hour), past)
	if err != nil || len(got) != 0 {
		t.Errorf("window in the past: %v %v, want none", got, err)
	}
	if _, err := h.svc.Metrics(ctx, defTeam, sb.ID, all[0].Timestamp, past); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("start after end: %v, want invalid argument", err)
	}
	// A paused sandbox returns what is stored, without sampling.
	if err := h.svc.Pause(ctx, defTeam, sb.ID); err != nil {
		t.Fatal(err)
	}
	before := h.node.Calls(controlplanetest.OpMetrics)
	if got, err := h.svc.Metrics(ctx, defTeam, sb.ID, time.Time{}, time.Time{}); err != nil || len(got) != 3 {
		t.Errorf("paused: %d samples, %v", len(got), err)
	}
	if h.node.Calls(controlplanetest.OpMetrics) != before {
		t.Errorf("paused sandbox was sampled")
	}
	if _, err := h.svc.Metrics(ctx, defTeam, "nosuchsandbox", time.Time{}, time.Time{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown: %v, want not found", err)
	}
	// Retention drops old samples.
	h.clock.Advance(48 * time.Hour)
	h.svc.prune(ctx)
	if got, _ := h.db.ListMetrics(ctx, sb.ID, time.Time{}, time.Time{}); len(got) != 0 {
		t.Errorf("%d samples kept past retention", len(got))
	}
}

func TestResolveSandbox(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	public := h.create(t, CreateRequest{})
	private := h.create(t, CreateRequest{AllowPublicTraffic: ptr(false)})
	paused := h.create(t, CreateRequest{})
	expired := h.create(t, CreateRequest{Timeout: time.Second})
	if err := h.svc.Pause(ctx, defTeam, paused.ID); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(2 * time.Second)

	got, err := h.svc.ResolveSandbox(ctx, public.ID)
	if err != nil || got.Address != public.Address || got.TrafficAccessToken != "" {
		t.Errorf("public: %+v %v", got, err)
	}
	got, err = h.svc.ResolveSandbox(ctx, private.ID)
	if err != nil || got.TrafficAccessToken != private.TrafficAccessToken || got.TrafficAccessToken == "" {
		t.Errorf("private: %+v %v", got, err)
	}
	for name, id := range map[string]string{"paused": paused.ID, "expired": expired.ID, "unknown": "abc", "invalid": "A-B"} {
		if _, err := h.svc.ResolveSandbox(ctx, id); !errors.Is(err, proxy.ErrSandboxNotFound) {
			t.Errorf("%s: %v, want proxy.ErrSandboxNotFound", name, err)
		}
	}
}

func TestListFiltersAndPages(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	var ids []string
	for i := range 7 {
		sb := h.create(t, CreateRequest{Metadata: map[string]string{"team": fmt.Sprint(i % 2), "all": "x"}})
		ids = append(ids, sb.ID)
		h.clock.Advance(time.Second)
	}
	if err := h.svc.Pause(ctx, defTeam, ids[0]); err != nil {
		t.Fatal(err)
	}
	collect := func(req ListRequest) []string {
		t.Helper()
		var out []string
		for page := 0; ; page++ {
			items, next, err := h.svc.List(ctx, defTeam, req)
			if err != nil {
				t.Fatalf("list %+v: %v", req, err)
			}
			if len(items) > req.Limit && req.Limit > 0 {
				t.Fatalf("page of %d items, limit %d", len(items), req.Limit)
			}
			for _, sb := range items {
				out = append(out, sb.ID)
			}
			if next == "" {
				return out
			}
			req.Cursor = next
			if page > 20 {
				t.Fatal("pagination does not end")
			}
		}
	}
	tests := []struct {
		name string
		req  ListRequest
		want []string
	}{
		{"all newest first", ListRequest{Limit: 2}, []string{ids[6], ids[5], ids[4], ids[3], ids[2], ids[1], ids[0]}},
		{"ascending", ListRequest{Limit: 3, Ascending: true}, ids},
		{"metadata", ListRequest{Limit: 2, Metadata: map[string]string{"team": "0"}}, []string{ids[6], ids[4], ids[2], ids[0]}},
		{"metadata and running", ListRequest{Limit: 1, States: []string{"running"}, Metadata: map[string]string{"team": "0", "all": "x"}}, []string{ids[6], ids[4], ids[2]}},
		{"paused", ListRequest{States: []string{"paused"}}, []string{ids[0]}},
		{"started after (inclusive)", ListRequest{Ascending: true, StartedAfter: h.stored(t, ids[5]).StartedAt}, []string{ids[5], ids[6]}},
		{"template alias", ListRequest{Template: "base", Limit: 100}, []string{ids[6], ids[5], ids[4], ids[3], ids[2], ids[1], ids[0]}},
		{"other template", ListRequest{Template: "large"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := collect(tt.req)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got %v\nwant %v", got, tt.want)
			}
		})
	}
	for name, req := range map[string]ListRequest{
		"bad state":  {States: []string{"dead"}},
		"bad limit":  {Limit: 101},
		"bad cursor": {Cursor: "garbage"},
	} {
		if _, _, err := h.svc.List(ctx, defTeam, req); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s: %v, want invalid argument", name, err)
		}
	}
	running, err := h.svc.ListRunning(ctx, defTeam, map[string]string{"team": "1"})
	if err != nil || len(running) != 3 {
		t.Errorf("ListRunning: %d %v, want 3", len(running), err)
	}
}
