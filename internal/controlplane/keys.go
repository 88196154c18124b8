package controlplane

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"lelantos.dev/lelantos/internal/store"
)

// API keys look like E2B's: "e2b_" and 40 lower-case hex digits (older
// clients refuse anything else before sending it). Only their SHA-256 is
// stored.
const (
	// APIKeyPrefix starts every API key.
	APIKeyPrefix = "e2b_"
	// apiKeyHexLen is the number of hex digits after the prefix.
	apiKeyHexLen = 40
	// AdminKeyName names the key EnsureAdminKey creates on first start.
	AdminKeyName = "admin"
	// displayPrefixLen is how much of a key is kept in the clear to tell
	// keys apart in listings ("e2b_" and 6 digits).
	displayPrefixLen = len(APIKeyPrefix) + 6
	// displaySuffixLen is how many of its last digits are kept, for E2B's
	// key mask.
	displaySuffixLen = 4
	// touchEvery throttles the recording of a key's last use.
	touchEvery = time.Minute
)

// KeyStore is the persistence of teams and API keys; *store.DB implements
// it.
type KeyStore interface {
	InsertAPIKey(ctx context.Context, k *store.APIKey) error
	APIKeyByHash(ctx context.Context, hash string) (*store.APIKey, error)
	GetAPIKey(ctx context.Context, id string) (*store.APIKey, error)
	ListAPIKeys(ctx context.Context) ([]*store.APIKey, error)
	ListTeamAPIKeys(ctx context.Context, teamID string) ([]*store.APIKey, error)
	RenameAPIKey(ctx context.Context, id, name string) error
	RevokeAPIKey(ctx context.Context, id string) error
	TouchAPIKey(ctx context.Context, id string, at time.Time) error
	InsertTeam(ctx context.Context, t *store.Team) error
	GetTeam(ctx context.Context, id string) (*store.Team, error)
	TeamBySlug(ctx context.Context, slug string) (*store.Team, error)
	ListTeams(ctx context.Context) ([]*store.Team, error)
	UpdateTeam(ctx context.Context, t *store.Team) error
}

// HashAPIKey is the stored form of a key: its SHA-256 in lower-case hex.
func HashAPIKey(plaintext string) string {
	sum := sha256.Sum256([]byte(plaintext))
	return hex.EncodeToString(sum[:])
}

// wellFormedKey reports whether key has the form of an issued key.
func wellFormedKey(key string) bool {
	hexPart, ok := strings.CutPrefix(key, APIKeyPrefix)
	if !ok || len(hexPart) != apiKeyHexLen {
		return false
	}
	for i := 0; i < len(hexPart); i++ {
		c := hexPart[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// CreateAPIKey issues a key of the default team named name; see
// CreateTeamAPIKey.
func CreateAPIKey(ctx context.Context, keys KeyStore, name string) (string, *store.APIKey, error) {
	return CreateTeamAPIKey(ctx, keys, store.DefaultTeamID, name)
}

// CreateTeamAPIKey issues a key of team teamID named name and returns its
// plaintext, which is shown once and never stored. Its ID is a UUID.
func CreateTeamAPIKey(ctx context.Context, keys KeyStore, teamID, name string) (string, *store.APIKey, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return "", nil, invalidf("name: must not be empty")
	}
	if err := checkText("name", name); err != nil {
		return "", nil, err
	}
	plaintext := APIKeyPrefix + randomHex(apiKeyHexLen/2)
	k := keyRecord(teamID, name, plaintext)
	err := keys.InsertAPIKey(ctx, k)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil, newError(ErrNotFound, "team %q not found", teamID)
	}
	if err != nil {
		return "", nil, internal("create API key "+name, err)
	}
	return plaintext, k, nil
}

// keyRecord is the stored form of key plaintext of team teamID, named name,
// made now: its hash and the ends kept in the clear, under a new UUID.
func keyRecord(teamID, name, plaintext string) *store.APIKey {
	return &store.APIKey{
		ID:        uuid.NewString(),
		TeamID:    teamID,
		Name:      name,
		Hash:      HashAPIKey(plaintext),
		Prefix:    plaintext[:displayPrefixLen],
		Suffix:    plaintext[len(plaintext)-displaySuffixLen:],
		CreatedAt: time.Now().UTC(),
	}
}

// EnsureGivenAdminKey registers plaintext, an operator's key of the form
// of issued ones (kept in a secret store), as the default team's "admin"
// key, unless a key of that hash already exists (revoked or not: a revoked
// given key stays revoked). Replicas that start at once with the same key
// register it once.
func EnsureGivenAdminKey(ctx context.Context, keys KeyStore, plaintext string) error {
	if !wellFormedKey(plaintext) {
		return invalidf("admin key: want %q and %d lower-case hex digits", APIKeyPrefix, apiKeyHexLen)
	}
	hash := HashAPIKey(plaintext)
	exists := func() (bool, error) {
		_, err := keys.APIKeyByHash(ctx, hash)
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		return err == nil, err
	}
	if ok, err := exists(); err != nil {
		return internal("ensure the given admin key", err)
	} else if ok {
		return nil
	}
	if err := keys.InsertAPIKey(ctx, keyRecord(store.DefaultTeamID, AdminKeyName, plaintext)); err != nil {
		// Another replica may have inserted it first.
		if ok, _ := exists(); ok {
			return nil
		}
		return internal("ensure the given admin key", err)
	}
	return nil
}

// EnsureAdminKey creates the "admin" key, in the default team, when the
// store has never had any key, returning its plaintext and created=true
// exactly once: the caller shows it or saves it (mode 0600). Once any key
// exists, even a revoked one, it creates nothing, so that revoking every key
// is not undone by a restart.
func EnsureAdminKey(ctx context.Context, keys KeyStore) (plaintext string, created bool, err error) {
	existing, err := keys.ListAPIKeys(ctx)
	if err != nil {
		return "", false, internal("ensure admin API key: list keys", err)
	}
	if len(existing) > 0 {
		return "", false, nil
	}
	plaintext, _, err = CreateAPIKey(ctx, keys, AdminKeyName)
	if err != nil {
		return "", false, err
	}
	return plaintext, true, nil
}

// ListAPIKeys returns every key of every team, revoked ones included (never
// plaintexts).
func ListAPIKeys(ctx context.Context, keys KeyStore) ([]*store.APIKey, error) {
	all, err := keys.ListAPIKeys(ctx)
	if err != nil {
		return nil, internal("list API keys", err)
	}
	return all, nil
}

// RevokeAPIKey revokes key id for good; an unknown ID is ErrNotFound.
func RevokeAPIKey(ctx context.Context, keys KeyStore, id string) error {
	err := keys.RevokeAPIKey(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return newError(ErrNotFound, "API key %q not found", id)
	}
	if err != nil {
		return internal("revoke API key "+id, err)
	}
	return nil
}

// Principal is who makes a request: the API key presented and the team it
// acts for.
type Principal struct {
	KeyID    string
	TeamID   string
	TeamSlug string
}

// Authenticator checks API keys presented with requests. It looks keys up
// by the hash of the whole key, so no comparison of secret bytes happens,
// and records each key's last use at most once a minute.
type Authenticator struct {
	keys KeyStore
	now  func() time.Time

	mu      sync.Mutex
	touched map[string]time.Time // key ID -> last recorded use
}

// NewAuthenticator checks keys against keys; clock may be nil (time.Now).
func NewAuthenticator(keys KeyStore, clock func() time.Time) *Authenticator {
	if clock == nil {
		clock = time.Now
	}
	return &Authenticator{keys: keys, now: clock, touched: make(map[string]time.Time)}
}

// Authenticate returns the principal of an active key; a missing,
// malformed, unknown or revoked key is ErrUnauthenticated.
func (a *Authenticator) Authenticate(ctx context.Context, key string) (Principal, error) {
	if key == "" {
		return Principal{}, newError(ErrUnauthenticated, "missing API key: send it in header X-API-Key")
	}
	if !wellFormedKey(key) {
		return Principal{}, newError(ErrUnauthenticated, "invalid API key")
	}
	k, err := a.keys.APIKeyByHash(ctx, HashAPIKey(key))
	if errors.Is(err, store.ErrNotFound) {
		return Principal{}, newError(ErrUnauthenticated, "invalid API key")
	}
	if err != nil {
		return Principal{}, internal("check API key", err)
	}
	if k.RevokedAt != nil {
		return Principal{}, newError(ErrUnauthenticated, "API key has been revoked")
	}
	team, err := a.keys.GetTeam(ctx, k.TeamID)
	if err != nil {
		return Principal{}, internal("read the team of API key "+k.ID, err)
	}
	a.touch(ctx, k.ID)
	return Principal{KeyID: k.ID, TeamID: team.ID, TeamSlug: team.Slug}, nil
}

// touch records that key id was used, at most once per touchEvery.
func (a *Authenticator) touch(ctx context.Context, id string) {
	now := a.now().UTC()
	a.mu.Lock()
	last, ok := a.touched[id]
	due := !ok || now.Sub(last) >= touchEvery
	if due {
		a.touched[id] = now
	}
	a.mu.Unlock()
	if due {
		// Best effort: failing to record the use must not refuse the request.
		_ = a.keys.TouchAPIKey(context.WithoutCancel(ctx), id, now)
	}
}
