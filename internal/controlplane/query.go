package controlplane

import (
	"context"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"

	agentv1 "lelantos.dev/lelantos/internal/gen/agent/v1"
	"lelantos.dev/lelantos/internal/proxy"
	"lelantos.dev/lelantos/internal/store"
)

// MaxListLimit is the largest page of a sandbox listing.
const MaxListLimit = 100

// clockSlack is how far a client's idea of "now" may be off ours.
const clockSlack = time.Second

// Get returns sandbox id of team teamID; unknown, killed, dead and other
// teams' sandboxes are ErrNotFound.
func (s *Service) Get(ctx context.Context, teamID, id string) (*store.Sandbox, error) {
	return s.getOwned(ctx, teamID, id)
}

// ListRequest selects sandboxes for List.
type ListRequest struct {
	// States are client states, "running" and/or "paused"; empty means both.
	States []string
	// Metadata pairs must all match.
	Metadata map[string]string
	// Template is a template the team sees (an ID, name or alias); empty
	// means any.
	Template string
	// StartedAfter, when set, keeps sandboxes started at or after it.
	StartedAfter time.Time
	// Ascending lists oldest first; the default is newest first.
	Ascending bool
	// Limit is the page size, 1..MaxListLimit (0 means MaxListLimit).
	Limit int
	// Cursor continues a previous page (its next cursor).
	Cursor string
}

// storeStates maps client states to the stored states they cover.
func storeStates(states []string) ([]string, error) {
	if len(states) == 0 {
		states = []string{StateRunning, StatePaused}
	}
	var out []string
	seen := map[string]bool{}
	for _, st := range states {
		if seen[st] {
			continue
		}
		seen[st] = true
		switch st {
		case StateRunning:
			out = append(out, StateRunning, StateResuming)
		case StatePaused:
			out = append(out, StatePaused, StatePausing)
		default:
			return nil, invalidf("state: unknown state %q (want %q or %q)", st, StateRunning, StatePaused)
		}
	}
	return out, nil
}

// List returns one page of team teamID's sandboxes and the cursor of the
// next page ("" on the last page).
func (s *Service) List(ctx context.Context, teamID string, req ListRequest) ([]*store.Sandbox, string, error) {
	if err := needTeam(teamID); err != nil {
		return nil, "", err
	}
	states, err := storeStates(req.States)
	if err != nil {
		return nil, "", err
	}
	limit := req.Limit
	if limit == 0 {
		limit = MaxListLimit
	}
	if limit < 1 || limit > MaxListLimit {
		return nil, "", invalidf("limit: must be between 1 and %d, got %d", MaxListLimit, limit)
	}
	f := store.SandboxFilter{
		TeamID:     teamID,
		States:     states,
		Metadata:   req.Metadata,
		Descending: !req.Ascending,
		Limit:      limit,
		Cursor:     req.Cursor,
	}
	if !req.StartedAfter.IsZero() {
		// The store's bound is exclusive; clients mean "at or after".
		f.StartedAfter = req.StartedAfter.Add(-time.Nanosecond)
	}
	if req.Template != "" {
		f.TemplateID = req.Template
		if tpl, err := s.store.FindTemplate(ctx, teamID, req.Template); err == nil {
			f.TemplateID = tpl.ID
		}
	}
	items, next, err := s.store.ListSandboxes(ctx, f)
	if errors.Is(err, store.ErrInvalidCursor) {
		return nil, "", invalidf("nextToken: invalid pagination token")
	}
	if err != nil {
		return nil, "", internal("list sandboxes", err)
	}
	return items, next, nil
}

// ListRunning returns every running sandbox of team teamID whose metadata
// matches, oldest first (the unpaginated listing of older clients).
func (s *Service) ListRunning(ctx context.Context, teamID string, metadata map[string]string) ([]*store.Sandbox, error) {
	if err := needTeam(teamID); err != nil {
		return nil, err
	}
	return s.listAll(ctx, store.SandboxFilter{TeamID: teamID, States: []string{StateRunning, StateResuming}, Metadata: metadata})
}

// listAll pages through every sandbox f selects.
func (s *Service) listAll(ctx context.Context, f store.SandboxFilter) ([]*store.Sandbox, error) {
	f.Limit = 1000
	var all []*store.Sandbox
	for {
		items, next, err := s.store.ListSandboxes(ctx, f)
		if err != nil {
			return nil, internal("list sandboxes", err)
		}
		all = append(all, items...)
		if next == "" {
			return all, nil
		}
		f.Cursor = next
	}
}

// Metrics returns the stored samples of sandbox id of team teamID between
// start and end (zero means unbounded). A running sandbox without any sample
// yet is sampled now, so that clients always get at least one entry for it.
func (s *Service) Metrics(ctx context.Context, teamID, id string, start, end time.Time) ([]store.Metric, error) {
	if !start.IsZero() && !end.IsZero() && start.After(end) {
		return nil, invalidf("start: must not be after end")
	}
	sb, err := s.getOwned(ctx, teamID, id)
	if err != nil {
		return nil, err
	}
	ms, err := s.store.ListMetrics(ctx, id, start, end)
	if err != nil {
		return nil, internal("read sandbox metrics", err)
	}
	// Clients round "now" to whole seconds: a window ending within
	// clockSlack of now still counts as reaching now.
	if len(ms) > 0 || sb.State != StateRunning || (!end.IsZero() && end.Add(clockSlack).Before(s.now())) {
		return ms, nil
	}
	m, err := s.sample(ctx, sb.NodeID, id)
	if err != nil {
		return nil, err
	}
	if start.IsZero() || !m.Timestamp.Before(start.Add(-clockSlack)) {
		ms = append(ms, m)
	}
	return ms, nil
}

// sample asks node nodeID for sandbox id's metric now and stores it.
func (s *Service) sample(ctx context.Context, nodeID, id string) (store.Metric, error) {
	node, err := s.nodeOf(ctx, nodeID)
	if err != nil {
		return store.Metric{}, err
	}
	resp, err := node.SandboxMetrics(ctx, connect.NewRequest(&agentv1.SandboxMetricsRequest{SandboxId: id}))
	if err != nil {
		return store.Metric{}, nodeError("sample sandbox metrics", id, err)
	}
	pm := resp.Msg.GetMetric()
	// Stamped with the control plane's clock, like everything it stores,
	// so that retention and the start/end filters use one time source.
	m := store.Metric{
		Timestamp:  s.now(),
		CPUCount:   int(pm.GetCpuCount()),
		CPUUsedPct: roundPct(pm.GetCpuUsedPct()),
		MemUsed:    pm.GetMemUsed(),
		MemTotal:   pm.GetMemTotal(),
		MemCache:   pm.GetMemCache(),
		DiskUsed:   pm.GetDiskUsed(),
		DiskTotal:  pm.GetDiskTotal(),
	}
	if err := s.store.InsertMetric(context.WithoutCancel(ctx), id, m); err != nil {
		return store.Metric{}, internal("store sandbox metric", err)
	}
	return m, nil
}

// ResolveSandbox tells the traffic proxy where running sandbox id listens.
// Anything else (unknown, paused, past its end time) wraps
// proxy.ErrSandboxNotFound.
func (s *Service) ResolveSandbox(ctx context.Context, id string) (proxy.Target, error) {
	if !validSandboxID(id) {
		return proxy.Target{}, fmt.Errorf("resolve sandbox %s: %w", id, proxy.ErrSandboxNotFound)
	}
	sb, err := s.store.GetSandbox(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return proxy.Target{}, fmt.Errorf("resolve sandbox %s: %w", id, proxy.ErrSandboxNotFound)
	}
	if err != nil {
		return proxy.Target{}, fmt.Errorf("resolve sandbox %s: %w", id, err)
	}
	if sb.State != StateRunning || sb.Address == "" || !sb.EndAt.After(s.now()) {
		return proxy.Target{}, fmt.Errorf("resolve sandbox %s (%s): %w", id, sb.State, proxy.ErrSandboxNotFound)
	}
	tunnel, err := s.tunnelOf(ctx, sb.NodeID)
	if e := (*Error)(nil); errors.As(err, &e) && e.Kind == ErrUnavailable {
		return proxy.Target{}, &proxy.UnreachableError{Message: fmt.Sprintf("sandbox %s: %s", id, e.Message)}
	}
	if err != nil {
		return proxy.Target{}, fmt.Errorf("resolve sandbox %s: %w", id, err)
	}
	mask, https := ingressOf(sb)
	return proxy.Target{Address: sb.Address, TrafficAccessToken: sb.TrafficAccessToken,
		MaskRequestHost: mask, HTTPSPorts: https, Tunnel: tunnel}, nil
}
