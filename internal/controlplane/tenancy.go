package controlplane

import (
	"context"
	"errors"

	"lelantos.dev/lelantos/internal/store"
)

// getOwned is getLive for a caller of team teamID: another team's sandbox
// is not found, with the same error as an unknown ID.
func (s *Service) getOwned(ctx context.Context, teamID, id string) (*store.Sandbox, error) {
	sb, err := s.getLive(ctx, id)
	if err != nil {
		return nil, err
	}
	if sb.TeamID != teamID {
		return nil, notFound(id)
	}
	return sb, nil
}

// needTeam refuses a call made for no team, which would otherwise list
// every team's objects.
func needTeam(teamID string) error {
	if teamID == "" {
		return internal("scope to the caller's team", errors.New("no team given"))
	}
	return nil
}
