package controlplane

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"

	"lelantos.dev/lelantos/internal/proxy"
	"lelantos.dev/lelantos/internal/store"
)

// resumeForTraffic resumes paused sandbox req.SandboxID for traffic the proxy
// could not route, and returns where it then runs. Only a sandbox created with
// autoResume and whose pause kept its memory is resumed; the request's tokens
// must open it as they would open the port (a private sandbox's traffic token,
// or on the daemon's port of a sandbox with an access token, that token). Its
// new end time is now plus the timeout it was created with. A sandbox still in
// a transition when ctx ends, or whose team has no room, is refused with the
// proxy's errors; anything not to resume is proxy.ErrSandboxNotFound.
func (s *Service) resumeForTraffic(ctx context.Context, req proxy.ResumeRequest) (proxy.Target, error) {
	id := req.SandboxID
	gone := fmt.Errorf("resume sandbox %s for traffic: %w", id, proxy.ErrSandboxNotFound)
	if !validSandboxID(id) {
		return proxy.Target{}, gone
	}
	unlock, err := s.lock(ctx, id)
	if err != nil {
		return proxy.Target{}, fmt.Errorf("resume sandbox %s for traffic: %w", id, proxy.ErrTransitioning)
	}
	defer unlock()
	sb, err := s.store.GetSandbox(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return proxy.Target{}, gone
	}
	if err != nil {
		return proxy.Target{}, internal("read sandbox", err)
	}
	switch {
	case sb.State == StateRunning && sb.Address != "" && sb.EndAt.After(s.now()):
		return s.targetOf(ctx, sb), nil // resumed by another request meanwhile
	case sb.State == StatePausing || sb.State == StateResuming || sb.State == StateStarting:
		return proxy.Target{}, fmt.Errorf("resume sandbox %s for traffic: it is %s: %w", id, sb.State, proxy.ErrTransitioning)
	case sb.State != StatePaused || !sb.AutoResume:
		return proxy.Target{}, gone
	}
	lc, err := s.store.SandboxLifecycleOf(ctx, id)
	if err != nil {
		return proxy.Target{}, internal("read sandbox lifecycle", err)
	}
	if !lc.PausedMemory {
		return proxy.Target{}, gone // paused with its files only: only a client resumes it
	}
	if !resumeAllowed(sb, req) {
		return proxy.Target{}, fmt.Errorf("resume sandbox %s for traffic: %w", id, proxy.ErrResumeDenied)
	}
	timeout := lc.Timeout
	if timeout <= 0 {
		timeout = s.cfg.DefaultTimeout
	}
	timeout = min(timeout, s.cfg.MaxTimeout)
	s.event(ctx, id, "traffic to port %d resumes the sandbox", req.Port)
	if err := s.resumeLocked(ctx, sb, timeout, false); err != nil {
		switch {
		case errors.Is(err, ErrQuota):
			return proxy.Target{}, fmt.Errorf("resume sandbox %s for traffic: %v: %w", id, err, proxy.ErrTooManySandboxes)
		case errors.Is(err, ErrNotFound):
			return proxy.Target{}, gone
		}
		return proxy.Target{}, err
	}
	return s.targetOf(ctx, sb), nil
}

// resumeAllowed reports whether req's tokens open sandbox sb: a private
// sandbox's ports other than the daemon's need its traffic token; the daemon's
// port of a sandbox with an access token needs that token.
func resumeAllowed(sb *store.Sandbox, req proxy.ResumeRequest) bool {
	want, got := "", ""
	switch {
	case req.Port == proxy.EnvdPort:
		want, got = sb.EnvdAccessToken, req.AccessToken
	case sb.TrafficAccessToken != "":
		want, got = sb.TrafficAccessToken, req.TrafficAccessToken
	}
	return want == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// targetOf is where the proxy reaches running sandbox sb: what ResolveSandbox
// answers for it.
func (s *Service) targetOf(ctx context.Context, sb *store.Sandbox) proxy.Target {
	t, err := s.ResolveSandbox(ctx, sb.ID)
	if err != nil {
		return proxy.Target{Address: sb.Address, TrafficAccessToken: sb.TrafficAccessToken}
	}
	return t
}
