package engine

import (
	"context"
	"fmt"

	"lelantos.dev/lelantos/internal/network"
)

// netOptions are the network choices of a sandbox of spec s.
func netOptions(s Spec) network.Options {
	return network.Options{AllowInternet: s.AllowInternet, Egress: s.Egress}
}

// UpdateNetwork replaces a running sandbox's internet access and egress rules at
// once (established connections follow them too) and records them, so that a resume
// or a restarted node keeps them. A sandbox that is not running gives ErrState.
func (e *Engine) UpdateNetwork(ctx context.Context, id string, allowInternet bool, egress *network.Egress) (Status, error) {
	b, err := e.lookup(id)
	if err != nil {
		return Status{}, fmt.Errorf("update network of sandbox %s: %w", id, err)
	}
	defer b.op.Unlock()
	rec := b.record()
	if rec.State != StateRunning {
		return statusOf(rec), fmt.Errorf("update network of sandbox %s: it is %s: %w", id, rec.State, ErrState)
	}
	rec.Spec.AllowInternet, rec.Spec.Egress = allowInternet, egress
	if err := e.opts.Network.SetOptions(ctx, rec.rid(), netOptions(rec.Spec)); err != nil {
		return Status{}, fmt.Errorf("update network of sandbox %s: %w", id, networkError(err))
	}
	if err := b.save(rec); err != nil {
		return Status{}, fmt.Errorf("update network of sandbox %s: %w", id, err)
	}
	b.log.event("network rules changed (internet access %t, %s)", allowInternet, describeEgress(egress))
	return statusOf(rec), nil
}

// describeEgress summarizes rules for the sandbox's log.
func describeEgress(eg *network.Egress) string {
	if eg == nil {
		return "no egress rules"
	}
	allow, deny := eg.Strings()
	return fmt.Sprintf("allow %v, deny %v", allow, deny)
}
