package controlplane

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"lelantos.dev/lelantos/internal/store"
)

// reapWorkers bounds how many due sandboxes are ended at once.
const reapWorkers = 4

// duePage is how many due sandboxes one store query returns: the background
// passes hold one page in memory, however many sandboxes are due.
const duePage = 100

// Run runs the reaper and the sweep of ended template builds (every
// ReaperInterval), the metrics sampler (every MetricsInterval), the
// repair of sandboxes stuck in a transitional state (every RepairInterval)
// and the node's heartbeat (at once, then every HeartbeatInterval) until
// ctx ends, then returns nil. Every replica sends its node's heartbeat;
// of the replicas sharing the store, one runs the other duties at a time: the one holding the store's background lease, which
// each Run tries to take and keeps renewing; when its holder stops or dies,
// another takes over within LeaseTTL. Only one Run per Service may be
// active; a second concurrent call fails.
func (s *Service) Run(ctx context.Context) error {
	if !s.runMu.TryLock() {
		return errors.New("control plane: Run is already active")
	}
	defer s.runMu.Unlock()
	rep := newRepairer()
	bg := &leaseKeeper{}
	var wg sync.WaitGroup
	wg.Go(func() { s.keepLease(ctx, backgroundLease, bg) })
	wg.Go(func() { s.every(ctx, s.cfg.ReaperInterval, bg.under(s.reapOnce)) })
	wg.Go(func() { s.every(ctx, s.cfg.MetricsInterval, bg.under(s.sampleOnce)) })
	sweepBuilds := func(ctx context.Context) { s.syncBuilds(ctx, "") }
	repair := func(ctx context.Context) { s.repairOnce(ctx, rep) }
	wg.Go(func() { s.every(ctx, s.cfg.ReaperInterval, bg.under(sweepBuilds)) })
	wg.Go(func() { s.every(ctx, s.cfg.RepairInterval, bg.under(repair)) })
	lost := map[string]bool{}
	watch := func(ctx context.Context) { s.watchNodes(ctx, lost) }
	wg.Go(func() { s.every(ctx, s.cfg.HeartbeatInterval, bg.under(watch)) })
	// Every replica reports the node it reaches, with or without the lease.
	wg.Go(func() {
		s.heartbeatOnce(ctx)
		s.every(ctx, s.cfg.HeartbeatInterval, s.heartbeatOnce)
	})
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

// reapOnce ends every running sandbox whose end time has passed (paused
// when it asked for that, else killed), and kills every sandbox paused for
// longer than PausedRetention.
func (s *Service) reapOnce(ctx context.Context) {
	now := s.now()
	s.eachDue(ctx, store.DueFilter{State: StateRunning, Before: now}, "reaper: end sandbox", s.expire)
	if s.cfg.PausedRetention == PausedForever {
		return
	}
	cutoff := now.Add(-s.cfg.PausedRetention)
	if cutoff.Before(time.Unix(0, 0)) {
		return // a retention of centuries: nothing was paused that long ago
	}
	s.eachDue(ctx, store.DueFilter{State: StatePaused, Before: cutoff}, "reaper: remove paused sandbox",
		func(ctx context.Context, id string) error { return s.expirePaused(ctx, id, cutoff) })
}

// eachDue calls fn on every sandbox f selects (its Limit is set here),
// reapWorkers at a time, reading them a page at a time; what fails is
// logged as what.
func (s *Service) eachDue(ctx context.Context, f store.DueFilter, what string, fn func(context.Context, string) error) {
	f.Limit = duePage
	sem := make(chan struct{}, reapWorkers)
	for ctx.Err() == nil {
		page, err := s.store.ListDue(ctx, f)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error(what+": list sandboxes", "state", f.State, "err", err)
			}
			return
		}
		var wg sync.WaitGroup
		for _, sb := range page {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				if err := fn(ctx, sb.ID); err != nil && ctx.Err() == nil {
					s.log.Error(what, "sandbox", sb.ID, "err", err)
				}
			})
		}
		wg.Wait()
		if len(page) < duePage {
			return
		}
		last := page[len(page)-1]
		f.AfterEndAt, f.AfterID = last.EndAt, last.ID
	}
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
		lc, lerr := s.store.SandboxLifecycleOf(ctx, id)
		if lerr != nil {
			s.log.Warn("reaper: read lifecycle; pausing with memory", "sandbox", id, "err", lerr)
			lc.AutoPauseMemory = true
		}
		err := s.pauseLocked(ctx, sb, "timed out", !lc.AutoPauseMemory)
		if err == nil || errors.Is(err, ErrNotFound) {
			return nil
		}
		// The timeout is a promise about resources: if the sandbox cannot
		// be paused, it is killed rather than left running.
		s.log.Warn("reaper: pause failed, killing instead", "sandbox", id, "err", err)
	}
	return s.killLocked(ctx, sb, "timed out")
}

// expirePaused kills sandbox id if, under its lock, it is still paused and
// was paused at or before cutoff. The node's kill removes its checkpoint;
// the record stays, killed with the reason, for DeadRetention.
func (s *Service) expirePaused(ctx context.Context, id string, cutoff time.Time) error {
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
	if sb.State != StatePaused || sb.EndAt.After(cutoff) {
		return nil // resumed, killed or touched since it was listed
	}
	return s.endLocked(ctx, sb, fmt.Sprintf("paused for more than %s: removed", days(s.cfg.PausedRetention)))
}

// endLocked removes sb from the node and keeps its record as killed, with
// the reason in its log, until prune drops it. The caller holds sb's lock.
func (s *Service) endLocked(ctx context.Context, sb *store.Sandbox, reason string) error {
	if err := s.nodeKill(ctx, sb.NodeID, sb.ID); err != nil {
		if !killLater(sb.NodeID, err) {
			return err
		}
		reason += fmt.Sprintf(" (node %s is out of reach: the sandbox is removed there when it reports again)", sb.NodeID)
	}
	s.dropKeptImage(ctx, sb.ID)
	sb.State = StateKilled
	sb.EndReason = reason
	sb.Address = ""
	sb.EndAt = s.now()
	if err := s.save(ctx, sb); err != nil {
		return err
	}
	s.event(ctx, sb.ID, "%s", reason)
	s.log.Info("sandbox killed", "sandbox", sb.ID, "reason", reason)
	return nil
}

// days writes d in days when it is a whole number of them ("30 days").
func days(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d == day:
		return "1 day"
	case d > 0 && d%day == 0:
		return fmt.Sprintf("%d days", d/day)
	}
	return d.String()
}

// sampleOnce stores a metric of every running sandbox and drops samples and
// ended records that are past their retention.
func (s *Service) sampleOnce(ctx context.Context) {
	err := s.forEach(ctx, store.SandboxFilter{States: []string{StateRunning}}, func(sb *store.Sandbox) error {
		cctx, cancel := context.WithTimeout(ctx, s.cfg.MetricsInterval)
		_, err := s.sample(cctx, sb.NodeID, sb.ID)
		cancel()
		// A sandbox killed meanwhile is not an error worth reporting.
		if err != nil && ctx.Err() == nil && !errors.Is(err, ErrNotFound) {
			s.log.Debug("sampler: sample sandbox", "sandbox", sb.ID, "err", err)
		}
		return nil
	})
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("sampler: list running sandboxes", "err", err)
		}
		return
	}
	s.prune(ctx)
}

// forEach calls fn on every sandbox f selects (its Limit and Cursor are set
// here), one page in memory at a time, and stops at fn's first error or
// when ctx ends.
func (s *Service) forEach(ctx context.Context, f store.SandboxFilter, fn func(*store.Sandbox) error) error {
	f.Limit, f.Cursor = duePage, ""
	for {
		items, next, err := s.store.ListSandboxes(ctx, f)
		if err != nil {
			return internal("list sandboxes", err)
		}
		for _, sb := range items {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(sb); err != nil {
				return err
			}
		}
		if next == "" {
			return nil
		}
		f.Cursor = next
	}
}

// prune drops metric samples older than MetricsRetention, the leases of
// replicas that died, and the records of dead and killed sandboxes that
// ended more than DeadRetention ago.
func (s *Service) prune(ctx context.Context) {
	now := s.now()
	if _, err := s.store.DeleteMetricsBefore(ctx, now.Add(-s.cfg.MetricsRetention)); err != nil && ctx.Err() == nil {
		s.log.Warn("sampler: prune metrics", "err", err)
	}
	if _, err := s.store.DeleteExpiredLeases(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("sampler: prune expired leases", "err", err)
	}
	for _, state := range []string{StateDead, StateKilled} { // both set EndAt when they end
		s.eachDue(ctx, store.DueFilter{State: state, Before: now.Add(-s.cfg.DeadRetention)}, "sampler: drop ended sandbox", s.dropEnded)
	}
}

// dropEnded removes dead or killed sandbox id from the node and the store,
// unless it changed meanwhile.
func (s *Service) dropEnded(ctx context.Context, id string) error {
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
	if sb.State != StateDead && sb.State != StateKilled {
		return nil
	}
	return s.killLocked(ctx, sb, "ended record expired")
}
