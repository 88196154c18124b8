package controlplane

import (
	"context"
	"errors"
	"testing"
	"time"

	"connectrpc.com/connect"

	"lelantos.dev/lelantos/internal/controlplane/controlplanetest"
	agentv1 "lelantos.dev/lelantos/internal/gen/agent/v1"
)

func TestEndTimeRules(t *testing.T) {
	ctx := context.Background()
	// Each case starts from a sandbox created with a 600 s timeout, waits
	// `after`, calls op, and expects end = creation + wantEnd.
	tests := []struct {
		name    string
		after   time.Duration
		op      func(s *Service, id string) error
		wantEnd time.Duration
	}{
		{"timeout sets a later end", 0, func(s *Service, id string) error { return s.SetTimeout(ctx, defTeam, id, time.Hour) }, time.Hour},
		{"timeout shortens", 0, func(s *Service, id string) error { return s.SetTimeout(ctx, defTeam, id, 60*time.Second) }, 60 * time.Second},
		{"timeout counts from now", 100 * time.Second, func(s *Service, id string) error { return s.SetTimeout(ctx, defTeam, id, 60*time.Second) }, 160 * time.Second},
		{"timeout zero ends now", 10 * time.Second, func(s *Service, id string) error { return s.SetTimeout(ctx, defTeam, id, 0) }, 10 * time.Second},
		{"refresh extends", 500 * time.Second, func(s *Service, id string) error { return s.Refresh(ctx, defTeam, id, 300*time.Second) }, 800 * time.Second},
		{"refresh never shortens", 0, func(s *Service, id string) error { return s.Refresh(ctx, defTeam, id, 60*time.Second) }, 600 * time.Second},
		{"refresh default duration", 400 * time.Second, func(s *Service, id string) error { return s.Refresh(ctx, defTeam, id, 0) }, 700 * time.Second},
		{"connect extends", 500 * time.Second, func(s *Service, id string) error {
			_, _, err := s.Connect(ctx, defTeam, id, 300*time.Second)
			return err
		}, 800 * time.Second},
		{"connect never shortens", 0, func(s *Service, id string) error {
			_, _, err := s.Connect(ctx, defTeam, id, 10*time.Second)
			return err
		}, 600 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			start := h.clock.Now()
			sb := h.create(t, CreateRequest{Timeout: 600 * time.Second})
			h.clock.Advance(tt.after)
			if err := tt.op(h.svc, sb.ID); err != nil {
				t.Fatalf("op: %v", err)
			}
			got := h.stored(t, sb.ID).EndAt.Sub(start)
			if got != tt.wantEnd {
				t.Errorf("end = start + %s, want start + %s", got, tt.wantEnd)
			}
		})
	}
}

func TestEndTimeInvalid(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	sb := h.create(t, CreateRequest{})
	tests := []struct {
		name string
		err  error
	}{
		{"timeout negative", h.svc.SetTimeout(ctx, defTeam, sb.ID, -time.Second)},
		{"timeout above max", h.svc.SetTimeout(ctx, defTeam, sb.ID, 25*time.Hour)},
		{"refresh above 3600", h.svc.Refresh(ctx, defTeam, sb.ID, 3601*time.Second)},
		{"refresh negative", h.svc.Refresh(ctx, defTeam, sb.ID, -time.Second)},
	}
	for _, tt := range tests {
		if !errors.Is(tt.err, ErrInvalidArgument) {
			t.Errorf("%s: err = %v, want invalid argument", tt.name, tt.err)
		}
	}
	for name, err := range map[string]error{
		"timeout": h.svc.SetTimeout(ctx, defTeam, "unknown", time.Minute),
		"refresh": h.svc.Refresh(ctx, defTeam, "unknown", time.Minute),
		"pause":   h.svc.Pause(ctx, defTeam, "unknown"),
		"kill":    h.svc.Kill(ctx, defTeam, "unknown"),
		"bad id":  h.svc.Kill(ctx, defTeam, "../etc"),
	} {
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("%s of unknown sandbox: %v, want not found", name, err)
		}
	}
}

func TestPauseResumeConnect(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	sb := h.create(t, CreateRequest{})
	expect := func(step string, err, want error, state string, nodeState agentv1.SandboxState) {
		t.Helper()
		if (want == nil && err != nil) || (want != nil && !errors.Is(err, want)) {
			t.Fatalf("%s: err = %v, want %v", step, err, want)
		}
		if got := h.stored(t, sb.ID).State; got != state {
			t.Fatalf("%s: stored state %q, want %q", step, got, state)
		}
		if got, _ := h.node.State(sb.ID); got != nodeState {
			t.Fatalf("%s: node state %v, want %v", step, got, nodeState)
		}
	}
	running, paused := agentv1.SandboxState_SANDBOX_STATE_RUNNING, agentv1.SandboxState_SANDBOX_STATE_PAUSED

	expect("pause", h.svc.Pause(ctx, defTeam, sb.ID), nil, StatePaused, paused)
	if h.stored(t, sb.ID).Address != "" {
		t.Errorf("paused sandbox keeps an address")
	}
	expect("pause again", h.svc.Pause(ctx, defTeam, sb.ID), ErrConflict, StatePaused, paused)
	_, err := h.svc.Resume(ctx, defTeam, sb.ID, ResumeRequest{Timeout: time.Minute, AutoPause: ptr(true)})
	expect("resume", err, nil, StateRunning, running)
	if got := h.stored(t, sb.ID); !got.AutoPause || !got.EndAt.Equal(h.clock.Now().Add(time.Minute)) || got.Address == "" {
		t.Errorf("resumed sandbox %+v: want autoPause, end now+1m, an address", got)
	}
	_, err = h.svc.Resume(ctx, defTeam, sb.ID, ResumeRequest{})
	expect("resume again", err, ErrConflict, StateRunning, running)

	_, resumed, err := h.svc.Connect(ctx, defTeam, sb.ID, time.Minute)
	expect("connect running", err, nil, StateRunning, running)
	if resumed {
		t.Errorf("connect to a running sandbox reported a resume")
	}
	expect("pause 2", h.svc.Pause(ctx, defTeam, sb.ID), nil, StatePaused, paused)
	got, resumed, err := h.svc.Connect(ctx, defTeam, sb.ID, 2*time.Minute)
	expect("connect paused", err, nil, StateRunning, running)
	if !resumed || !got.EndAt.Equal(h.clock.Now().Add(2*time.Minute)) {
		t.Errorf("connect to paused: resumed=%v end=%s", resumed, got.EndAt)
	}

	// A runtime that cannot pause: conflict, and the sandbox keeps running.
	h.node.Fail(controlplanetest.OpPause, connect.NewError(connect.CodeFailedPrecondition, errors.New("runtime runc cannot checkpoint")))
	expect("pause unsupported", h.svc.Pause(ctx, defTeam, sb.ID), ErrConflict, StateRunning, running)
	h.node.Fail(controlplanetest.OpPause, nil)

	// A resume the node cannot do leaves it paused; an unreachable node is 503.
	expect("pause 3", h.svc.Pause(ctx, defTeam, sb.ID), nil, StatePaused, paused)
	h.node.Fail(controlplanetest.OpResume, connect.NewError(connect.CodeUnavailable, errors.New("node down")))
	_, err = h.svc.Resume(ctx, defTeam, sb.ID, ResumeRequest{})
	expect("resume unavailable", err, ErrUnavailable, StatePaused, paused)
	h.node.Fail(controlplanetest.OpResume, nil)

	// A sandbox the node lost is dead and not found from then on.
	h.node.Remove(sb.ID)
	_, err = h.svc.Resume(ctx, defTeam, sb.ID, ResumeRequest{})
	if !errors.Is(err, ErrNotFound) || h.stored(t, sb.ID).State != StateDead {
		t.Fatalf("resume of a lost sandbox: %v, stored %q; want not found and dead", err, h.stored(t, sb.ID).State)
	}
}

func TestKill(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	a := h.create(t, CreateRequest{})
	b := h.create(t, CreateRequest{})

	h.node.Fail(controlplanetest.OpKill, connect.NewError(connect.CodeUnavailable, errors.New("node down")))
	if err := h.svc.Kill(ctx, defTeam, a.ID); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("kill with node down: %v, want unavailable", err)
	}
	if h.stored(t, a.ID) == nil {
		t.Fatalf("sandbox forgotten although the node did not confirm the kill")
	}
	h.node.Fail(controlplanetest.OpKill, nil)

	if err := h.svc.Kill(ctx, defTeam, a.ID); err != nil {
		t.Fatalf("kill: %v", err)
	}
	if h.stored(t, a.ID) != nil {
		t.Errorf("killed sandbox still stored")
	}
	if _, ok := h.node.State(a.ID); ok {
		t.Errorf("killed sandbox still on node")
	}
	if err := h.svc.Kill(ctx, defTeam, a.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second kill: %v, want not found", err)
	}
	if _, err := h.svc.Get(ctx, defTeam, a.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("get killed: %v, want not found", err)
	}
	// Already gone from the node (it crashed): the kill still succeeds.
	h.node.Remove(b.ID)
	if err := h.svc.Kill(ctx, defTeam, b.ID); err != nil || h.stored(t, b.ID) != nil {
		t.Errorf("kill of a sandbox the node lost: %v", err)
	}
	if h.svc.locks.size() != 0 {
		t.Errorf("%d sandbox locks left behind", h.svc.locks.size())
	}
}

func TestReaper(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	kill := h.create(t, CreateRequest{Timeout: time.Minute})
	pause := h.create(t, CreateRequest{Timeout: time.Minute, AutoPause: true})
	extended := h.create(t, CreateRequest{Timeout: time.Minute})
	cannotPause := h.create(t, CreateRequest{Timeout: time.Minute, AutoPause: true})
	later := h.create(t, CreateRequest{Timeout: time.Hour})

	h.clock.Advance(50 * time.Second)
	if err := h.svc.Refresh(ctx, defTeam, extended.ID, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	h.svc.reapOnce(ctx)
	if n := h.node.Len(); n != 5 {
		t.Fatalf("reaper ended sandboxes before their time: %d left", n)
	}

	h.clock.Advance(11 * time.Second) // 61 s: the 1-minute ones are due
	// The node refuses to pause cannotPause (it reports it dead, and only a
	// running sandbox pauses): the reaper must kill it instead.
	h.node.Put(&agentv1.SandboxStatus{SandboxId: cannotPause.ID, State: agentv1.SandboxState_SANDBOX_STATE_DEAD})
	h.svc.reapOnce(ctx)

	if h.stored(t, kill.ID) != nil {
		t.Errorf("due sandbox not killed")
	}
	if _, ok := h.node.State(kill.ID); ok {
		t.Errorf("due sandbox still on node")
	}
	if got := h.stored(t, pause.ID); got == nil || got.State != StatePaused {
		t.Errorf("autoPause sandbox: %+v, want paused", got)
	}
	if st, _ := h.node.State(pause.ID); st != agentv1.SandboxState_SANDBOX_STATE_PAUSED {
		t.Errorf("autoPause sandbox on node: %v", st)
	}
	if got := h.stored(t, extended.ID); got == nil || got.State != StateRunning {
		t.Errorf("refreshed sandbox was reaped")
	}
	if h.stored(t, cannotPause.ID) != nil {
		t.Errorf("sandbox that could not be paused was left, want killed")
	}
	if got := h.stored(t, later.ID); got == nil || got.State != StateRunning {
		t.Errorf("sandbox with time left was reaped")
	}
	// The paused one is never reaped again.
	h.clock.Advance(48 * time.Hour)
	h.svc.reapOnce(ctx)
	if got := h.stored(t, pause.ID); got == nil || got.State != StatePaused {
		t.Errorf("paused sandbox reaped: %+v", got)
	}
}

func TestRunReapsAndSamples(t *testing.T) {
	h := newHarness(t)
	db := h.db
	svc, err := New(Config{ReaperInterval: 5 * time.Millisecond, MetricsInterval: 5 * time.Millisecond,
		Logger: h.svc.log}, db, h.node)
	if err != nil {
		t.Fatal(err)
	}
	short, err := svc.Create(context.Background(), defTeam, CreateRequest{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	long, err := svc.Create(context.Background(), defTeam, CreateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for h.stored(t, short.ID) != nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if h.stored(t, short.ID) != nil {
		t.Errorf("Run did not reap a due sandbox")
	}
	for time.Now().Before(deadline) {
		if ms, _ := db.ListMetrics(context.Background(), long.ID, time.Time{}, time.Time{}); len(ms) >= 2 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ms, _ := db.ListMetrics(context.Background(), long.ID, time.Time{}, time.Time{}); len(ms) < 2 {
		t.Errorf("sampler stored %d metrics, want >= 2", len(ms))
	}
	// The first Run is active now (it reaped and sampled): a second fails.
	if err := svc.Run(ctx); err == nil {
		t.Errorf("second concurrent Run succeeded")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
