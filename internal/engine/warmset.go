package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// SetWarmPool keeps size sandboxes of spec booted from now on, in place of the
// pool of the same template (spec.TemplateID) configured before, at New or by
// an earlier call; size 0 removes that pool. Pooled sandboxes no configured
// pool matches any more (e.g. of a template's older version) are removed
// before it returns. It is for templates that appear while the node runs, such
// as the ones the server builds itself.
func (e *Engine) SetWarmPool(ctx context.Context, spec Spec, size int) error {
	if size < 0 {
		return fmt.Errorf("set warm pool %s: %w: size %d", spec.TemplateID, ErrInvalid, size)
	}
	if spec.RuntimeClass == "" {
		spec.RuntimeClass = e.opts.DefaultClass
	}
	if size > 0 {
		check := spec
		check.ID = warmID()
		if err := validate(check); err != nil {
			return fmt.Errorf("set warm pool %s: %w", spec.TemplateID, err)
		}
		if _, err := e.runtimeFor(spec.RuntimeClass); err != nil {
			return fmt.Errorf("set warm pool %s: %w", spec.TemplateID, err)
		}
	}
	// Stop the filler, so that the pools change between two of its runs.
	e.mu.Lock()
	if e.poolCancel == nil {
		e.mu.Unlock()
		return errors.New("set warm pool: the engine has no pools running")
	}
	e.poolCancel()
	filling := e.filled
	e.mu.Unlock()
	if filling != nil {
		<-filling // a sandbox being booted for a pool is removed by the filler
	}
	e.mu.Lock()
	pools := slices.DeleteFunc(slices.Clone(e.opts.Warm), func(p WarmPool) bool { return p.Spec.TemplateID == spec.TemplateID })
	if size > 0 {
		pools = append(pools, WarmPool{Spec: spec, Size: size})
	}
	wanted := map[string]bool{}
	for _, p := range pools {
		s := p.Spec
		if s.RuntimeClass == "" {
			s.RuntimeClass = e.opts.DefaultClass
		}
		wanted[poolKey(s)] = true
	}
	var stale []*box
	for k, pool := range e.warm {
		if !wanted[k] {
			stale = append(stale, pool...)
			delete(e.warm, k)
		}
	}
	e.opts.Warm = pools
	e.poolCtx, e.poolCancel = context.WithCancel(context.Background())
	e.mu.Unlock()
	var errs []error
	for _, b := range stale {
		rt, _ := e.runtimeFor(b.rec.Spec.RuntimeClass)
		b.op.Lock()
		errs = append(errs, e.destroy(ctx, b, rt))
		b.op.Unlock()
	}
	e.refill()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("set warm pool %s: remove stale pooled sandboxes: %w", spec.TemplateID, err)
	}
	return nil
}
