package controlplane

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/controlplane/controlplanetest"
	"lelantos.dev/lelantos/internal/proxy"
	"lelantos.dev/lelantos/internal/store"
)

// TestPauseKinds: a pause keeps the memory unless asked for files only, at the
// request or at the end time; a connect may ask for a fresh boot; E2B's
// combinations of options are checked.
func TestPauseKinds(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	sb := h.create(t, CreateRequest{})
	if err := h.svc.PauseWith(ctx, defTeam, sb.ID, PauseRequest{FilesOnly: true}); err != nil {
		t.Fatal(err)
	}
	if !h.node.LastPauseFilesOnly(sb.ID) {
		t.Error("the node was not asked for a pause of the files only")
	}
	if lc, _ := h.db.SandboxLifecycleOf(ctx, sb.ID); lc.PausedMemory {
		t.Error("the pause is recorded as keeping the memory")
	}
	if err := h.svc.PauseWith(ctx, defTeam, sb.ID, PauseRequest{}); !errors.Is(err, ErrConflict) {
		t.Errorf("pause of a paused sandbox: %v, want ErrConflict", err)
	}
	if _, _, err := h.svc.ConnectWith(ctx, defTeam, sb.ID, ConnectRequest{ColdBoot: true}); err != nil {
		t.Fatal(err)
	}
	if !h.node.LastResumeCold(sb.ID) {
		t.Error("the node was not asked for a fresh boot")
	}
	if err := h.svc.Pause(ctx, defTeam, sb.ID); err != nil {
		t.Fatal(err)
	}
	if h.node.LastPauseFilesOnly(sb.ID) {
		t.Error("a plain pause asked for the files only")
	}
	if lc, _ := h.db.SandboxLifecycleOf(ctx, sb.ID); !lc.PausedMemory {
		t.Error("a pause with memory is recorded as keeping the files only")
	}

	// At the end time.
	timed := h.create(t, CreateRequest{Timeout: time.Minute, AutoPause: true, AutoPauseFilesOnly: true})
	h.clock.Advance(2 * time.Minute)
	h.svc.reapOnce(ctx)
	if st := h.stored(t, timed.ID); st.State != StatePaused || !h.node.LastPauseFilesOnly(timed.ID) {
		t.Errorf("timed out with autoPauseMemory=false: %s, files only %v", st.State, h.node.LastPauseFilesOnly(timed.ID))
	}

	for _, tt := range []struct {
		name string
		req  CreateRequest
	}{
		{"files only without autoPause", CreateRequest{AutoPauseFilesOnly: true}},
		{"files only with autoResume", CreateRequest{AutoPause: true, AutoResume: true, AutoPauseFilesOnly: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := h.svc.Create(ctx, defTeam, tt.req); !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("got %v, want ErrInvalidArgument", err)
			}
		})
	}
}

// TestResumeForTraffic: traffic resumes a paused sandbox that asked for it, with
// a pause that kept its memory, when its tokens allow; concurrent requests cause
// one resume; anything else gets the proxy's errors and resumes nothing.
func TestResumeForTraffic(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	paused := func(req CreateRequest, filesOnly bool) *store.Sandbox {
		t.Helper()
		sb := h.create(t, req)
		if err := h.svc.PauseWith(ctx, defTeam, sb.ID, PauseRequest{FilesOnly: filesOnly}); err != nil {
			t.Fatal(err)
		}
		return h.stored(t, sb.ID)
	}
	auto := CreateRequest{Timeout: 7 * time.Minute, AutoPause: true, AutoResume: true}
	private := auto
	private.AllowPublicTraffic = ptr(false)
	pub := paused(auto, false)
	priv := paused(private, false)
	noAuto := paused(CreateRequest{AutoPause: true}, false)
	filesOnly := paused(CreateRequest{AutoPause: true}, true)
	if err := h.db.UpdateSandbox(ctx, withAutoResume(filesOnly)); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		req  proxy.ResumeRequest
		want error // nil: resumed
	}{
		{"not asked for", proxy.ResumeRequest{SandboxID: noAuto.ID, Port: 8000}, proxy.ErrSandboxNotFound},
		{"paused with files only", proxy.ResumeRequest{SandboxID: filesOnly.ID, Port: 8000}, proxy.ErrSandboxNotFound},
		{"unknown", proxy.ResumeRequest{SandboxID: "nosuchsandbox", Port: 8000}, proxy.ErrSandboxNotFound},
		{"bad ID", proxy.ResumeRequest{SandboxID: "Bad/ID", Port: 8000}, proxy.ErrSandboxNotFound},
		{"private, no traffic token", proxy.ResumeRequest{SandboxID: priv.ID, Port: 8000}, proxy.ErrResumeDenied},
		{"private, wrong traffic token", proxy.ResumeRequest{SandboxID: priv.ID, Port: 8000, TrafficAccessToken: "x"}, proxy.ErrResumeDenied},
		{"daemon port, wrong access token", proxy.ResumeRequest{SandboxID: pub.ID, Port: proxy.EnvdPort, AccessToken: "x"}, proxy.ErrResumeDenied},
		{"private, traffic token", proxy.ResumeRequest{SandboxID: priv.ID, Port: 8000, TrafficAccessToken: priv.TrafficAccessToken}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resumes := h.node.Calls(controlplanetest.OpResume)
			target, err := h.svc.ResumeForTraffic(ctx, tt.req)
			if tt.want != nil {
				if !errors.Is(err, tt.want) {
					t.Fatalf("got %+v, %v; want %v", target, err, tt.want)
				}
				if h.node.Calls(controlplanetest.OpResume) != resumes {
					t.Error("a refused resume reached the node")
				}
				return
			}
			if err != nil || target.Address == "" {
				t.Fatalf("resume: %+v, %v", target, err)
			}
		})
	}

	// Concurrent requests: one resume; its end time is the create's timeout on.
	before := h.node.Calls(controlplanetest.OpResume)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = h.svc.ResumeForTraffic(ctx, proxy.ResumeRequest{SandboxID: pub.ID, Port: proxy.EnvdPort,
				AccessToken: pub.EnvdAccessToken})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("request %d: %v", i, err)
		}
	}
	if n := h.node.Calls(controlplanetest.OpResume) - before; n != 1 {
		t.Errorf("%d resumes for 8 concurrent requests, want 1", n)
	}
	st := h.stored(t, pub.ID)
	if want := h.clock.Now().Add(7 * time.Minute); st.State != StateRunning || !st.EndAt.Equal(want) {
		t.Errorf("resumed: %s until %v, want running until %v", st.State, st.EndAt, want)
	}

	// A team at its limit.
	one := 1
	team := newTeam(t, h, "full", store.QuotaSettings{MaxSandboxes: &one})
	sb, err := h.svc.Create(ctx, team.ID, auto)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.svc.Pause(ctx, team.ID, sb.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.Create(ctx, team.ID, CreateRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.ResumeForTraffic(ctx, proxy.ResumeRequest{SandboxID: sb.ID, Port: 8000}); !errors.Is(err, proxy.ErrTooManySandboxes) {
		t.Errorf("resume past the team's limit: %v, want ErrTooManySandboxes", err)
	}
	if st := h.stored(t, sb.ID); st.State != StatePaused {
		t.Errorf("after a refused resume: %s", st.State)
	}
}

// withAutoResume is sb with autoResume on, as a stored sandbox could be.
func withAutoResume(sb *store.Sandbox) *store.Sandbox {
	sb.AutoResume = true
	return sb
}
