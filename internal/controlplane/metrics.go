package controlplane

import (
	"context"
	"errors"
	"math"
	"time"

	"lelantos.dev/lelantos/internal/store"
)

// MaxMetricsSandboxes is the most sandboxes one LatestMetrics call takes.
const MaxMetricsSandboxes = 100

// roundPct rounds a CPU percentage to 2 decimals, as E2B's daemon reports it.
func roundPct(p float64) float64 { return math.Round(p*100) / 100 }

// LatestMetrics returns the newest sample of each of the sandboxes ids of
// team teamID, by sandbox ID. IDs that are unknown, another team's, or of
// sandboxes that ended are left out, as are sandboxes never sampled; a
// running sandbox without a recent sample is sampled now. More than
// MaxMetricsSandboxes IDs is ErrInvalidArgument.
func (s *Service) LatestMetrics(ctx context.Context, teamID string, ids []string) (map[string]store.Metric, error) {
	if len(ids) > MaxMetricsSandboxes {
		return nil, invalidf("sandbox_ids: Too many sandboxes requested, maximum is %d", MaxMetricsSandboxes)
	}
	out := map[string]store.Metric{}
	recent := s.now().Add(-2*s.cfg.MetricsInterval - clockSlack)
	for _, id := range ids {
		sb, err := s.getOwned(ctx, teamID, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		m, ok, err := s.latest(ctx, sb, recent)
		if err != nil {
			return nil, err
		}
		if ok {
			out[id] = m
		}
	}
	return out, nil
}

// latest returns sb's newest sample: one taken after recent, else, for a
// running sandbox, one taken now, else the newest stored.
func (s *Service) latest(ctx context.Context, sb *store.Sandbox, recent time.Time) (store.Metric, bool, error) {
	ms, err := s.store.ListMetrics(ctx, sb.ID, recent, time.Time{})
	if err != nil {
		return store.Metric{}, false, internal("read sandbox metrics", err)
	}
	if len(ms) > 0 {
		return ms[len(ms)-1], true, nil
	}
	if sb.State == StateRunning {
		m, err := s.sample(ctx, sb.NodeID, sb.ID)
		if err == nil {
			return m, true, nil
		}
		// Paused or gone meanwhile: what is stored is the answer.
		s.log.Debug("sample sandbox metrics", "sandbox", sb.ID, "err", err)
	}
	if ms, err = s.store.ListMetrics(ctx, sb.ID, time.Time{}, time.Time{}); err != nil {
		return store.Metric{}, false, internal("read sandbox metrics", err)
	}
	if len(ms) == 0 {
		return store.Metric{}, false, nil
	}
	return ms[len(ms)-1], true, nil
}
