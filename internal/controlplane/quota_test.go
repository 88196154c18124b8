package controlplane

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/store"
)

// TestSandboxQuotas: creates and resumes over a team's quotas are ErrQuota
// naming the quota; other teams and paused sandboxes do not count.
func TestSandboxQuotas(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	one, two := 1, 2
	b := newTeam(t, h, "beta", store.QuotaSettings{MaxSandboxes: &two, MaxVCPU: &one})
	h.create(t, CreateRequest{}) // the default team's, not counted for beta
	if _, err := h.svc.Create(ctx, b.ID, CreateRequest{}); !errors.Is(err, ErrQuota) ||
		err.Error() != `team "beta" is at its limit of 1 vCPUs of running sandboxes (max-vcpu): 0 in use, 2 more asked` {
		t.Fatalf("a 2-CPU create over max-vcpu 1: %v", err)
	}
	b.Quotas.MaxVCPU = nil
	if err := UpdateTeam(ctx, h.db, b); err != nil {
		t.Fatal(err)
	}
	first, err := h.svc.Create(ctx, b.ID, CreateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.Create(ctx, b.ID, CreateRequest{}); err != nil {
		t.Fatal(err)
	}
	_, err = h.svc.Create(ctx, b.ID, CreateRequest{})
	if !errors.Is(err, ErrQuota) || err.Error() != `team "beta" is at its limit of 2 concurrent sandboxes (max-sandboxes)` {
		t.Fatalf("a third create: %v", err)
	}
	// A paused sandbox frees its slot, and needs one to come back.
	if err := h.svc.Pause(ctx, b.ID, first.ID); err != nil {
		t.Fatal(err)
	}
	third, err := h.svc.Create(ctx, b.ID, CreateRequest{})
	if err != nil {
		t.Fatalf("create after a pause: %v", err)
	}
	if _, err := h.svc.Resume(ctx, b.ID, first.ID, ResumeRequest{}); !errors.Is(err, ErrQuota) {
		t.Fatalf("resume over the quota: %v", err)
	}
	if _, _, err := h.svc.Connect(ctx, b.ID, first.ID, 0); !errors.Is(err, ErrQuota) {
		t.Fatalf("connect (a resume) over the quota: %v", err)
	}
	if st := h.stored(t, first.ID); st.State != StatePaused {
		t.Fatalf("a refused resume left the sandbox %s", st.State)
	}
	if n := h.node.Calls("resume"); n != 0 {
		t.Fatalf("the node resumed %d sandboxes over the quota", n)
	}
	if err := h.svc.Kill(ctx, b.ID, third.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.svc.Connect(ctx, b.ID, first.ID, 0); err != nil {
		t.Fatalf("connect with a free slot: %v", err)
	}
}

// TestServerQuotaDefaults: a team without its own quota follows the
// server's; one set to 0 is unlimited.
func TestServerQuotaDefaults(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	svc, err := New(Config{Clock: h.clock.Now, TeamQuotas: store.Quotas{MaxSandboxes: 1, MaxMemoryMB: 768}}, h.db, h.node)
	if err != nil {
		t.Fatal(err)
	}
	zero := 0
	b := newTeam(t, h, "beta", store.QuotaSettings{})
	c := newTeam(t, h, "gamma", store.QuotaSettings{MaxSandboxes: &zero})
	if _, err := svc.Create(ctx, b.ID, CreateRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Create(ctx, b.ID, CreateRequest{}); !errors.Is(err, ErrQuota) || !strings.Contains(err.Error(), "(max-sandboxes)") {
		t.Fatalf("a second create under the server's default of 1: %v", err)
	}
	if _, err := svc.Create(ctx, c.ID, CreateRequest{}); err != nil {
		t.Fatal(err)
	}
	_, err = svc.Create(ctx, c.ID, CreateRequest{})
	if !errors.Is(err, ErrQuota) || err.Error() != `team "gamma" is at its limit of 768 MB of memory of running sandboxes (max-memory-mb): 512 in use, 512 more asked` {
		t.Fatalf("gamma's second 512 MB sandbox under the default 768 MB: %v", err)
	}
	if _, err := New(Config{TeamQuotas: store.Quotas{MaxBuilds: -1}}, h.db, h.node); err == nil {
		t.Error("a negative default quota was accepted")
	}
}

// TestQuotaRaceThroughService: creates race for the last slots of a team on
// a slow node; exactly max-sandboxes of them win.
func TestQuotaRaceThroughService(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	three := 3
	b := newTeam(t, h, "beta", store.QuotaSettings{MaxSandboxes: &three})
	h.node.SetDelay(20 * time.Millisecond)
	errs := make(chan error, 12)
	for range 12 {
		go func() {
			_, err := h.svc.Create(ctx, b.ID, CreateRequest{})
			errs <- err
		}()
	}
	won := 0
	for range 12 {
		switch err := <-errs; {
		case err == nil:
			won++
		case !errors.Is(err, ErrQuota):
			t.Errorf("create: %v", err)
		}
	}
	if won != 3 {
		t.Fatalf("%d creates won, want 3", won)
	}
}

// TestBuildQuota: builds over max-builds are ErrQuota until one ends; a
// build the builder refuses frees its slot at once.
func TestBuildQuota(t *testing.T) {
	ctx := context.Background()
	h, fb := templateHarness(t)
	one := 1
	b := newTeam(t, h, "beta", store.QuotaSettings{MaxBuilds: &one})
	req := TemplateBuildRequest{Name: "web", Dockerfile: "FROM base\n"}
	fb.startErr = newError(ErrInvalidArgument, "dockerfile: bad")
	if _, _, err := h.svc.BuildTemplate(ctx, b.ID, req); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("a refused build: %v", err)
	}
	fb.startErr = nil
	_, first, err := h.svc.BuildTemplate(ctx, b.ID, req)
	if err != nil {
		t.Fatalf("the first build after a refused one: %v", err)
	}
	_, _, err = h.svc.BuildTemplate(ctx, b.ID, TemplateBuildRequest{Name: "api", Dockerfile: "FROM base\n"})
	if !errors.Is(err, ErrQuota) || err.Error() != `team "beta" is at its limit of 1 concurrent template builds (max-builds)` {
		t.Fatalf("a second build: %v", err)
	}
	if _, _, err := h.svc.BuildTemplate(ctx, defTeam, TemplateBuildRequest{Name: "other", Dockerfile: "FROM base\n"}); err != nil {
		t.Fatalf("another team's build: %v", err)
	}
	fb.finish(t, first, BuildError)
	if _, _, err := h.svc.BuildTemplate(ctx, b.ID, req); err != nil {
		t.Fatalf("a build after the first failed: %v", err)
	}
	// The sweep records ends nobody asked about.
	for _, rec := range mustRunning(t, h) {
		fb.finish(t, rec.ID, BuildReady)
	}
	h.svc.syncBuilds(ctx, "")
	if left := mustRunning(t, h); len(left) != 0 {
		t.Fatalf("%d builds still counted as running after they ended", len(left))
	}
}

// mustRunning lists the builds the store counts as running.
func mustRunning(t *testing.T, h *harness) []*store.TemplateBuild {
	t.Helper()
	list, err := h.db.ListRunningBuilds(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	return list
}
