package store

import (
	"context"
	"fmt"
)

// Quotas are limits on what a team uses at once; 0 means unlimited.
type Quotas struct {
	// MaxSandboxes bounds the team's running sandboxes: starting, running,
	// pausing and resuming ones count, paused ones do not.
	MaxSandboxes int
	// MaxVCPU bounds the sum of the CPU counts of those sandboxes.
	MaxVCPU int
	// MaxMemoryMB bounds the sum of their memory sizes.
	MaxMemoryMB int
	// MaxBuilds bounds the team's template builds that have not finished.
	MaxBuilds int
}

// QuotaSettings are a team's own quotas; a nil field follows the server's
// default (see Resolve).
type QuotaSettings struct {
	MaxSandboxes, MaxVCPU, MaxMemoryMB, MaxBuilds *int
}

// Resolve returns the quotas in effect: each set field, else its default.
func (q QuotaSettings) Resolve(defaults Quotas) Quotas {
	pick := func(p *int, d int) int {
		if p != nil {
			return *p
		}
		return d
	}
	return Quotas{
		MaxSandboxes: pick(q.MaxSandboxes, defaults.MaxSandboxes),
		MaxVCPU:      pick(q.MaxVCPU, defaults.MaxVCPU),
		MaxMemoryMB:  pick(q.MaxMemoryMB, defaults.MaxMemoryMB),
		MaxBuilds:    pick(q.MaxBuilds, defaults.MaxBuilds),
	}
}

// check refuses negative quotas.
func (q QuotaSettings) check() error {
	for _, f := range []struct {
		name string
		v    *int
	}{{QuotaSandboxes, q.MaxSandboxes}, {QuotaVCPU, q.MaxVCPU}, {QuotaMemoryMB, q.MaxMemoryMB}, {QuotaBuilds, q.MaxBuilds}} {
		if f.v != nil && *f.v < 0 {
			return fmt.Errorf("quota %s is negative: %w", f.name, ErrInvalid)
		}
	}
	return nil
}

// The quotas by the names operators set them with.
const (
	QuotaSandboxes = "max-sandboxes"
	QuotaVCPU      = "max-vcpu"
	QuotaMemoryMB  = "max-memory-mb"
	QuotaBuilds    = "max-builds"
)

// QuotaError is an admission a team's quota refused. It wraps ErrQuota.
type QuotaError struct {
	// TeamSlug is the team's slug.
	TeamSlug string
	// Quota is one of the Quota constants.
	Quota string
	// Limit is the quota's value, Used what the team uses now and Asked
	// what the refused admission would have added.
	Limit, Used, Asked int
}

// Error describes the refusal.
func (e *QuotaError) Error() string {
	return fmt.Sprintf("team %q: quota %s of %d reached (%d in use, %d asked)", e.TeamSlug, e.Quota, e.Limit, e.Used, e.Asked)
}

// Unwrap makes errors.Is(err, ErrQuota) true.
func (e *QuotaError) Unwrap() error { return ErrQuota }

// admitSandboxTx checks, inside the write transaction that then stores sb
// in a running state, that sb's team can run it besides its other running
// sandboxes (sb itself is not counted twice).
func admitSandboxTx(ctx context.Context, tx conn, sb *Sandbox, defaults Quotas) error {
	team, err := teamTx(ctx, tx, sb.TeamID)
	if err != nil {
		return err
	}
	q := team.Quotas.Resolve(defaults)
	if q.MaxSandboxes == 0 && q.MaxVCPU == 0 && q.MaxMemoryMB == 0 {
		return nil
	}
	var n, cpu, mem int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*), CAST(COALESCE(SUM(cpu_count), 0) AS BIGINT),
		CAST(COALESCE(SUM(memory_mb), 0) AS BIGINT)
		FROM sandboxes WHERE team_id = ? AND state IN (?, ?, ?, ?) AND id <> ?`,
		sb.TeamID, StateStarting, StateRunning, StatePausing, StateResuming, sb.ID).Scan(&n, &cpu, &mem); err != nil {
		return fmt.Errorf("count running sandboxes of team %s: %w", team.Slug, err)
	}
	for _, c := range []struct {
		quota             string
		limit, used, more int
	}{
		{QuotaSandboxes, q.MaxSandboxes, n, 1},
		{QuotaVCPU, q.MaxVCPU, cpu, sb.CPUCount},
		{QuotaMemoryMB, q.MaxMemoryMB, mem, sb.MemoryMB},
	} {
		if c.limit > 0 && c.used+c.more > c.limit {
			return &QuotaError{TeamSlug: team.Slug, Quota: c.quota, Limit: c.limit, Used: c.used, Asked: c.more}
		}
	}
	return nil
}

// holdsResources reports the states admitSandboxTx counts.
func holdsResources(state string) bool {
	return state == StateStarting || state == StateRunning || state == StatePausing || state == StateResuming
}
