package controlplane

import (
	"context"
	"errors"
	"regexp"
	"sync/atomic"
	"testing"
	"time"
)

var (
	keyPattern  = regexp.MustCompile(`^e2b_[0-9a-f]{40}$`)
	uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
)

func TestAPIKeys(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)

	admin, created, err := EnsureAdminKey(ctx, h.db)
	if err != nil || !created || !keyPattern.MatchString(admin) {
		t.Fatalf("first EnsureAdminKey: %q %v %v", admin, created, err)
	}
	again, created, err := EnsureAdminKey(ctx, h.db)
	if err != nil || created || again != "" {
		t.Fatalf("second EnsureAdminKey: %q %v %v, want nothing created", again, created, err)
	}
	ci, k, err := CreateAPIKey(ctx, h.db, "ci")
	if err != nil || !keyPattern.MatchString(ci) || k.Name != "ci" || k.Hash != HashAPIKey(ci) || k.Prefix != ci[:10] ||
		k.Suffix != ci[len(ci)-4:] || k.TeamID != defTeam || !uuidPattern.MatchString(k.ID) {
		t.Fatalf("CreateAPIKey: %q %+v %v", ci, k, err)
	}
	if _, _, err := CreateAPIKey(ctx, h.db, "  "); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("empty name: %v", err)
	}
	keys, err := ListAPIKeys(ctx, h.db)
	if err != nil || len(keys) != 2 {
		t.Fatalf("ListAPIKeys: %v %v", keys, err)
	}
	for _, k := range keys {
		if k.Hash == admin || k.Hash == ci {
			t.Errorf("plaintext stored")
		}
	}

	auth := NewAuthenticator(h.db, h.clock.Now)
	if err := RevokeAPIKey(ctx, h.db, k.ID); err != nil {
		t.Fatal(err)
	}
	if err := RevokeAPIKey(ctx, h.db, "key_nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoke unknown: %v, want not found", err)
	}
	tests := []struct {
		name, key string
		ok        bool
	}{
		{"admin", admin, true},
		{"missing", "", false},
		{"malformed", "sk-123", false},
		{"upper-case hex", "e2b_" + "ABCDEF0123456789ABCDEF0123456789ABCDEF01", false},
		{"well-formed but unknown", "e2b_" + "0123456789abcdef0123456789abcdef01234567", false},
		{"revoked", ci, false},
	}
	for _, tt := range tests {
		p, err := auth.Authenticate(ctx, tt.key)
		if tt.ok && (err != nil || p.TeamID != defTeam || p.TeamSlug != "default" || p.KeyID == "") {
			t.Errorf("%s: %+v %v", tt.name, p, err)
		}
		if !tt.ok && !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%s: %v, want unauthenticated", tt.name, err)
		}
	}
	// Last use is recorded, at most once a minute.
	touches := &countingKeys{KeyStore: h.db}
	auth = NewAuthenticator(touches, h.clock.Now)
	for range 5 {
		if _, err := auth.Authenticate(ctx, admin); err != nil {
			t.Fatal(err)
		}
	}
	h.clock.Advance(2 * time.Minute)
	if _, err := auth.Authenticate(ctx, admin); err != nil {
		t.Fatal(err)
	}
	if n := touches.n.Load(); n != 2 {
		t.Errorf("last use recorded %d times, want 2", n)
	}
	keys, _ = ListAPIKeys(ctx, h.db)
	for _, k := range keys {
		if k.Name == AdminKeyName && (k.LastUsedAt == nil || !k.LastUsedAt.Equal(h.clock.Now())) {
			t.Errorf("admin last used %v, want %v", k.LastUsedAt, h.clock.Now())
		}
	}
}

// countingKeys counts TouchAPIKey calls.
type countingKeys struct {
	KeyStore
	n atomic.Int64
}

func (c *countingKeys) TouchAPIKey(ctx context.Context, id string, at time.Time) error {
	c.n.Add(1)
	return c.KeyStore.TouchAPIKey(ctx, id, at)
}

var _ KeyStore = (*countingKeys)(nil)

// TestEnsureGivenAdminKey: an operator's key is registered once however many
// replicas start with it, authenticates as the default team's, stays revoked
// once revoked, and one not of the issued form is refused.
func TestEnsureGivenAdminKey(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	const given = "e2b_0123456789abcdef0123456789abcdef01234567"
	for _, bad := range []string{"", "e2b_short", "sk_0123456789abcdef0123456789abcdef01234567", "e2b_0123456789ABCDEF0123456789abcdef01234567"} {
		if err := EnsureGivenAdminKey(ctx, h.db, bad); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("EnsureGivenAdminKey(%q) = %v, want invalid", bad, err)
		}
	}
	errs := make(chan error, 4)
	for range 4 {
		go func() { errs <- EnsureGivenAdminKey(ctx, h.db, given) }()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	keys, err := ListAPIKeys(ctx, h.db)
	if err != nil || len(keys) != 1 || keys[0].Name != AdminKeyName || keys[0].TeamID != defTeam {
		t.Fatalf("keys after four starts: %+v %v, want the one admin key", keys, err)
	}
	auth := NewAuthenticator(h.db, h.clock.Now)
	if p, err := auth.Authenticate(ctx, given); err != nil || p.TeamID != defTeam {
		t.Fatalf("the given key: %+v %v", p, err)
	}
	if err := RevokeAPIKey(ctx, h.db, keys[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := EnsureGivenAdminKey(ctx, h.db, given); err != nil {
		t.Fatal(err)
	}
	if _, err := NewAuthenticator(h.db, h.clock.Now).Authenticate(ctx, given); err == nil {
		t.Error("a revoked given key came back at a restart")
	}
}
