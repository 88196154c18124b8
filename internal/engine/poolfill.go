package engine

import (
	"context"
	"errors"
	goruntime "runtime"
	"time"
)

// maxWarmRetry caps the delay between failed warm-pool boots.
const maxWarmRetry = 2 * time.Minute

// fillConcurrency is how many pooled sandboxes boot at once: a boot waits on
// runsc and the daemon for part of its time, so two per core refill a pool
// about twice as fast as one at a time, without starving the sandboxes in use.
func fillConcurrency() int { return max(1, min(2*goruntime.NumCPU(), 4)) }

// refillSettle is how long after a create takes a pooled sandbox the pools
// that still hold at least half their target wait before booting more: the
// first commands of the sandbox just handed out, usually within this time,
// then do not share the CPU with boots. A pool below half its target boots at
// once, so a burst is never left to cold boots.
const refillSettle = 500 * time.Millisecond

// backoff is a pool's failed boots in a row and when it may boot again.
type backoff struct {
	delay time.Duration
	until time.Time
}

// refill wakes the pools' filler, starting it unless it runs.
func (e *Engine) refill() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.poolCtx == nil || e.poolCtx.Err() != nil {
		return
	}
	if e.filled != nil {
		select {
		case e.poolWake <- struct{}{}:
		default:
		}
		return
	}
	done := make(chan struct{})
	e.filled = done
	ctx := e.poolCtx
	go func() {
		defer close(done)
		e.fillPools(ctx)
		e.mu.Lock()
		if e.filled == done {
			e.filled = nil
		}
		e.mu.Unlock()
	}()
}

// fillPools keeps every pool at its target (see demandWindow) until ctx ends:
// it boots what pools lack, up to fillConcurrency at a time, and removes what
// they hold beyond it. A boot that fails is logged and its pool tried again
// after a delay that doubles with each failure in a row, from Options.WarmRetry
// up to maxWarmRetry; it never stops the engine. It returns once ctx ends and
// its boots are done (their sandboxes removed).
func (e *Engine) fillPools(ctx context.Context) {
	booted := make(chan struct{}, fillConcurrency())
	inFlight := 0
	defer func() {
		for ; inFlight > 0; inFlight-- {
			<-booted
		}
	}()
	tick := time.NewTicker(demandTick)
	defer tick.Stop()
	for ctx.Err() == nil {
		starts, excess, wake := e.planPools(time.Now(), fillConcurrency()-inFlight)
		for _, b := range excess {
			e.removePooled(ctx, b)
		}
		for _, t := range starts {
			inFlight++
			go func() {
				defer func() { booted <- struct{}{} }()
				e.bootInto(ctx, t)
			}()
		}
		var retry <-chan time.Time
		var tm *time.Timer
		if !wake.IsZero() {
			tm = time.NewTimer(time.Until(wake))
			retry = tm.C
		}
		select {
		case <-ctx.Done():
		case <-e.poolWake:
		case <-booted:
			inFlight--
		case <-tick.C:
		case <-retry:
		}
		if tm != nil {
			tm.Stop()
		}
	}
}

// planPools picks up to slots pools to boot one sandbox for, and the pooled
// sandboxes beyond their pool's target (taken out of the pools), and says when
// a pool waiting after a failure, or for a taken sandbox to settle
// (refillSettle), may boot again (zero: none waits).
func (e *Engine) planPools(now time.Time, slots int) (starts []poolTarget, excess []*box, wake time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, t := range e.targetsLocked(now) {
		have := len(e.warm[t.key])
		for have > t.want {
			pool := e.warm[t.key]
			excess = append(excess, pool[0]) // the oldest
			e.warm[t.key] = pool[1:]
			have--
		}
		if len(e.warm[t.key]) == 0 {
			delete(e.warm, t.key)
		}
		if bo, ok := e.poolRetry[t.key]; ok && now.Before(bo.until) {
			if wake.IsZero() || bo.until.Before(wake) {
				wake = bo.until
			}
			continue
		}
		if n := have + e.poolBooting[t.key]; n < t.want && 2*n >= t.want && now.Before(e.settleUntil) {
			if wake.IsZero() || e.settleUntil.Before(wake) {
				wake = e.settleUntil
			}
			continue
		}
		for have+e.poolBooting[t.key] < t.want && slots > 0 {
			e.poolBooting[t.key]++
			starts = append(starts, t)
			slots--
		}
	}
	for _, b := range excess {
		e.dischargeLocked(b)
	}
	return starts, excess, wake
}

// bootInto boots one sandbox for pool t and pools it, or records the failure.
func (e *Engine) bootInto(ctx context.Context, t poolTarget) {
	b, err := e.bootWarm(ctx, t.spec)
	e.mu.Lock()
	e.poolBooting[t.key]--
	if e.poolBooting[t.key] <= 0 {
		delete(e.poolBooting, t.key)
	}
	if err != nil {
		if ctx.Err() == nil {
			bo := e.poolRetry[t.key]
			bo.delay = min(max(2*bo.delay, e.opts.WarmRetry), maxWarmRetry)
			bo.until = time.Now().Add(bo.delay)
			e.poolRetry[t.key] = bo
			if errors.Is(err, ErrInvalid) {
				delete(e.demand, t.key) // e.g. a template version removed since
			}
		}
		e.mu.Unlock()
		if ctx.Err() == nil {
			e.opts.Logger.Error("warm pool: boot a sandbox; retrying", "template", t.spec.TemplateID, "err", err)
		}
		return
	}
	delete(e.poolRetry, t.key)
	if ctx.Err() != nil { // drained meanwhile: this one is not wanted
		e.mu.Unlock()
		e.removeBooted(ctx, b)
		return
	}
	e.addWarmLocked(t.key, b)
	e.mu.Unlock()
}

// removePooled removes a sandbox taken out of its pool.
func (e *Engine) removePooled(ctx context.Context, b *box) {
	rt, _ := e.runtimeFor(b.record().Spec.RuntimeClass)
	b.op.Lock()
	defer b.op.Unlock()
	if err := e.destroy(context.WithoutCancel(ctx), b, rt); err != nil {
		e.opts.Logger.Error("warm pool: remove a pooled sandbox", "sandbox", b.record().rid(), "err", err)
	}
}

// removeBooted removes a sandbox booted for a pool that is gone.
func (e *Engine) removeBooted(ctx context.Context, b *box) { e.removePooled(ctx, b) }

// PoolState is one warm pool as it stands.
type PoolState struct {
	// TemplateID and the sizes are those of the pool's sandboxes.
	TemplateID string
	CPUCount   int
	MemoryMB   int
	// Ready is how many pooled sandboxes wait for a create, Booting how many are
	// being booted for it, Target how many it aims at now.
	Ready, Booting, Target int
}

// Pools reports the warm pools: configured ones and those demand made.
func (e *Engine) Pools() []PoolState {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []PoolState
	for _, t := range e.targetsLocked(time.Now()) {
		out = append(out, PoolState{TemplateID: t.spec.TemplateID, CPUCount: t.spec.CPUCount, MemoryMB: t.spec.MemoryMB,
			Ready: len(e.warm[t.key]), Booting: e.poolBooting[t.key], Target: t.want})
	}
	return out
}
