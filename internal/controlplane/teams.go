package controlplane

import (
	"cmp"
	"context"
	"errors"
	"strings"

	"github.com/google/uuid"

	"lelantos.dev/lelantos/internal/store"
)

// CLIKeyName names the key Accounts.LoginKey makes for E2B's CLI.
const CLIKeyName = "CLI login/configure"

// CreateTeam makes a team with a slug (1-63 of a-z, 0-9, '-', '_'), a name
// (the slug when empty) and its own quotas (nil fields follow the server's
// defaults). An existing slug is ErrConflict.
func CreateTeam(ctx context.Context, keys KeyStore, slug, name string, q store.QuotaSettings) (*store.Team, error) {
	if !store.ValidSlug(slug) {
		return nil, invalidf("team: %q must be 1-%d of a-z, 0-9, '-' and '_'", slug, store.MaxSlugLen)
	}
	if err := checkQuotas(q); err != nil {
		return nil, err
	}
	t := &store.Team{ID: uuid.NewString(), Slug: slug, Name: cmp.Or(strings.TrimSpace(name), slug), Quotas: q}
	err := keys.InsertTeam(ctx, t)
	if errors.Is(err, store.ErrExists) {
		return nil, newError(ErrConflict, "team %q already exists", slug)
	}
	if err != nil {
		return nil, internal("create team "+slug, err)
	}
	return t, nil
}

// EnsureTeam returns the team with this slug, creating it (with the
// server's default quotas) when there is none; created tells which.
func EnsureTeam(ctx context.Context, keys KeyStore, slug string) (t *store.Team, created bool, err error) {
	if t, err := TeamBySlug(ctx, keys, slug); err == nil || !errors.Is(err, ErrNotFound) {
		return t, false, err
	}
	t, err = CreateTeam(ctx, keys, slug, "", store.QuotaSettings{})
	if errors.Is(err, ErrConflict) { // made meanwhile by someone else
		t, err = TeamBySlug(ctx, keys, slug)
		return t, false, err
	}
	return t, err == nil, err
}

// TeamBySlug returns the team with this slug; an unknown one is
// ErrNotFound.
func TeamBySlug(ctx context.Context, keys KeyStore, slug string) (*store.Team, error) {
	t, err := keys.TeamBySlug(ctx, slug)
	if errors.Is(err, store.ErrNotFound) {
		return nil, newError(ErrNotFound, "team %q not found", slug)
	}
	if err != nil {
		return nil, internal("read team "+slug, err)
	}
	return t, nil
}

// ListTeams returns every team, ordered by slug.
func ListTeams(ctx context.Context, keys KeyStore) ([]*store.Team, error) {
	ts, err := keys.ListTeams(ctx)
	if err != nil {
		return nil, internal("list teams", err)
	}
	return ts, nil
}

// UpdateTeam stores t's name and quotas.
func UpdateTeam(ctx context.Context, keys KeyStore, t *store.Team) error {
	if err := checkQuotas(t.Quotas); err != nil {
		return err
	}
	err := keys.UpdateTeam(ctx, t)
	if errors.Is(err, store.ErrNotFound) {
		return newError(ErrNotFound, "team %q not found", t.Slug)
	}
	if err != nil {
		return internal("update team "+t.Slug, err)
	}
	return nil
}

// checkQuotas refuses negative quotas, naming the quota.
func checkQuotas(q store.QuotaSettings) error {
	for _, f := range []struct {
		name string
		v    *int
	}{{store.QuotaSandboxes, q.MaxSandboxes}, {store.QuotaVCPU, q.MaxVCPU}, {store.QuotaMemoryMB, q.MaxMemoryMB}, {store.QuotaBuilds, q.MaxBuilds}} {
		if f.v != nil && *f.v < 0 {
			return invalidf("%s: must not be negative (0 means unlimited), got %d", f.name, *f.v)
		}
	}
	return nil
}

// Accounts is a team's view of itself and of its API keys, for its own API
// clients (E2B's /teams and /api-keys routes). Every method takes the
// caller's team and acts on that team only.
type Accounts struct {
	keys KeyStore
}

// NewAccounts serves the teams and keys of keys.
func NewAccounts(keys KeyStore) *Accounts { return &Accounts{keys: keys} }

// keyNotFound is the answer for an unknown key, or another team's.
func keyNotFound() error { return newError(ErrNotFound, "id not found") }

// Team returns the caller's team.
func (a *Accounts) Team(ctx context.Context, teamID string) (*store.Team, error) {
	t, err := a.keys.GetTeam(ctx, teamID)
	if err != nil {
		return nil, internal("read team "+teamID, err)
	}
	return t, nil
}

// LoginKey makes a new key of the caller's team named CLIKeyName, as E2B
// does each time its CLI logs in, and returns its plaintext.
func (a *Accounts) LoginKey(ctx context.Context, teamID string) (string, error) {
	plain, _, err := CreateTeamAPIKey(ctx, a.keys, teamID, CLIKeyName)
	return plain, err
}

// ListKeys returns the team's active keys, oldest first.
func (a *Accounts) ListKeys(ctx context.Context, teamID string) ([]*store.APIKey, error) {
	all, err := a.keys.ListTeamAPIKeys(ctx, teamID)
	if err != nil {
		return nil, internal("list API keys", err)
	}
	active := all[:0]
	for _, k := range all {
		if k.RevokedAt == nil {
			active = append(active, k)
		}
	}
	return active, nil
}

// CreateKey issues a key of the team; see CreateTeamAPIKey.
func (a *Accounts) CreateKey(ctx context.Context, teamID, name string) (string, *store.APIKey, error) {
	return CreateTeamAPIKey(ctx, a.keys, teamID, name)
}

// ownKey reads active key id of the team: a malformed ID is
// ErrInvalidArgument, an unknown, revoked or other team's key ErrNotFound.
func (a *Accounts) ownKey(ctx context.Context, teamID, id string) (*store.APIKey, error) {
	if err := uuid.Validate(id); err != nil {
		return nil, invalidf("apiKeyID: %q is not a UUID", id)
	}
	k, err := a.keys.GetAPIKey(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (k.TeamID != teamID || k.RevokedAt != nil)) {
		return nil, keyNotFound()
	}
	if err != nil {
		return nil, internal("read API key "+id, err)
	}
	return k, nil
}

// RenameKey renames key id of the team.
func (a *Accounts) RenameKey(ctx context.Context, teamID, id, name string) error {
	name = strings.TrimSpace(name)
	if name == "" {
		return invalidf("name: must not be empty")
	}
	if _, err := a.ownKey(ctx, teamID, id); err != nil {
		return err
	}
	if err := a.keys.RenameAPIKey(ctx, id, name); err != nil {
		return internal("rename API key "+id, err)
	}
	return nil
}

// DeleteKey revokes key id of the team: it stops working at once and leaves
// the listing.
func (a *Accounts) DeleteKey(ctx context.Context, teamID, id string) error {
	if _, err := a.ownKey(ctx, teamID, id); err != nil {
		return err
	}
	return RevokeAPIKey(ctx, a.keys, id)
}
