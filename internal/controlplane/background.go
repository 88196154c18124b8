package controlplane

import (
	"context"
	"errors"
	"sync"
	"time"

	"lelantos.dev/lelantos/internal/store"
)

// reapWorkers bounds how many due sandboxes are ended at once.
const reapWorkers = 4

// Run runs the reaper (every ReaperInterval) and the metrics sampler (every
// MetricsInterval) until ctx ends, then returns nil. Only one Run per Service
// may be active; a second concurrent call fails.
func (s *Service) Run(ctx context.Context) error {
	if !s.runMu.TryLock() {
		return errors.New("control plane: Run is already active")
	}
	defer s.runMu.Unlock()
	var wg sync.WaitGroup
	wg.Go(func() { s.every(ctx, s.cfg.ReaperInterval, s.reapOnce) })
	wg.Go(func() { s.every(ctx, s.cfg.MetricsInterval, s.sampleOnce) })
	wg.Wait()
	return nil
}

// every calls fn every interval until ctx ends.
func (s *Service) every(ctx context.Context, interval time.Duration, fn func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn(ctx)
		}
	}
}

// reapOnce ends every running sandbox whose end time has passed: paused when
// it asked for that (autoPause), else killed.
func (s *Service) reapOnce(ctx context.Context) {
	due, err := s.store.ListDue(ctx, s.now())
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("reaper: list due sandboxes", "err", err)
		}
		return
	}
	sem := make(chan struct{}, reapWorkers)
	var wg sync.WaitGroup
	for _, sb := range due {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := s.expire(ctx, sb.ID); err != nil && ctx.Err() == nil {
				s.log.Error("reaper: end sandbox", "sandbox", sb.ID, "err", err)
			}
		})
	}
	wg.Wait()
}

// expire ends sandbox id if, under its lock, it is still running and due.
func (s *Service) expire(ctx context.Context, id string) error {
	unlock, err := s.lock(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	sb, err := s.store.GetSandbox(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return internal("read sandbox", err)
	}
	if sb.State != StateRunning || sb.EndAt.After(s.now()) {
		return nil // changed since it was listed: extended, paused or killed
	}
	if sb.AutoPause {
		s.event(ctx, id, "sandbox timed out: pausing")
		err := s.pauseLocked(ctx, sb, "timed out")
		if err == nil || errors.Is(err, ErrNotFound) {
			return nil
		}
		// The timeout is a promise about resources: if the sandbox cannot
		// be paused, it is killed rather than left running.
		s.log.Warn("reaper: pause failed, killing instead", "sandbox", id, "err", err)
	}
	return s.killLocked(ctx, sb, "timed out")
}

// sampleOnce stores a metric of every running sandbox and drops samples and
// dead records that are past their retention.
func (s *Service) sampleOnce(ctx context.Context) {
	running, err := s.listAll(ctx, store.SandboxFilter{States: []string{StateRunning}})
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("sampler: list running sandboxes", "err", err)
		}
		return
	}
	for _, sb := range running {
		if ctx.Err() != nil {
			return
		}
		cctx, cancel := context.WithTimeout(ctx, s.cfg.MetricsInterval)
		_, err := s.sample(cctx, sb.ID)
		cancel()
		// A sandbox killed meanwhile is not an error worth reporting.
		if err != nil && ctx.Err() == nil && !errors.Is(err, ErrNotFound) {
			s.log.Debug("sampler: sample sandbox", "sandbox", sb.ID, "err", err)
		}
	}
	s.prune(ctx)
}

// prune drops metric samples older than MetricsRetention and the records of
// dead sandboxes older than DeadRetention.
func (s *Service) prune(ctx context.Context) {
	now := s.now()
	if _, err := s.store.DeleteMetricsBefore(ctx, now.Add(-s.cfg.MetricsRetention)); err != nil && ctx.Err() == nil {
		s.log.Warn("sampler: prune metrics", "err", err)
	}
	dead, err := s.listAll(ctx, store.SandboxFilter{States: []string{StateDead}})
	if err != nil {
		return
	}
	for _, sb := range dead {
		if sb.EndAt.After(now.Add(-s.cfg.DeadRetention)) { // markDead set EndAt
			continue
		}
		if err := s.dropDead(ctx, sb.ID); err != nil && ctx.Err() == nil {
			s.log.Warn("sampler: drop dead sandbox", "sandbox", sb.ID, "err", err)
		}
	}
}

// dropDead removes dead sandbox id from the node and the store, unless it
// changed meanwhile.
func (s *Service) dropDead(ctx context.Context, id string) error {
	unlock, err := s.lock(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	sb, err := s.store.GetSandbox(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return internal("read sandbox", err)
	}
	if sb.State != StateDead {
		return nil
	}
	return s.killLocked(ctx, sb, "dead record expired")
}
