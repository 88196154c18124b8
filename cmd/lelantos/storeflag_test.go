package main

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"lelantos.dev/lelantos/internal/controlplane"
	"lelantos.dev/lelantos/internal/store"
	"lelantos.dev/lelantos/internal/store/pgtest"
)

// TestMain stops the PostgreSQL server the tests started.
func TestMain(m *testing.M) { pgtest.Main(m) }

// TestStoreLocation: --store takes a PostgreSQL URL as it is and a SQLite
// path made absolute; without it, the data directory's file.
func TestStoreLocation(t *testing.T) {
	abs, _ := filepath.Abs("rel/x.db")
	for _, tt := range []struct{ flag, want string }{
		{"", "/data/lelantos.db"},
		{"postgres://u:p@db:5432/lelantos?sslmode=require", "postgres://u:p@db:5432/lelantos?sslmode=require"},
		{"postgresql:///lelantos?host=/run/postgresql", "postgresql:///lelantos?host=/run/postgresql"},
		{"/srv/state.db", "/srv/state.db"},
		{"rel/x.db", abs},
	} {
		if got, err := storeLocation(tt.flag, "/data"); err != nil || got != tt.want {
			t.Errorf("storeLocation(%q) = %q, %v; want %q", tt.flag, got, err, tt.want)
		}
	}
}

// TestAdminCommandsOnPostgres: `lelantos keys` and `lelantos teams` work on a
// PostgreSQL store named by --store or $LELANTOS_STORE, and the key they make
// authenticates against it.
func TestAdminCommandsOnPostgres(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	out, err := captureStdout(t, func() error { return keys(ctx, []string{"create", "ci", "--team", "acme", "--store", url}) })
	if err != nil {
		t.Fatalf("keys create: %v", err)
	}
	key := regexp.MustCompile(`(?m)^e2b_[0-9a-f]{40}$`).FindString(out)
	if !strings.Contains(out, "created team acme") || key == "" {
		t.Fatalf("keys create printed:\n%s", out)
	}
	t.Setenv("LELANTOS_STORE", url)
	if _, err := captureStdout(t, func() error {
		return teamsCmd(ctx, []string{"set", "acme", "--max-sandboxes", "3"})
	}); err != nil {
		t.Fatalf("teams set with $LELANTOS_STORE: %v", err)
	}
	db, err := store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p, err := controlplane.NewAuthenticator(db, nil).Authenticate(ctx, key)
	if err != nil || p.TeamSlug != "acme" {
		t.Fatalf("the printed key: %+v, %v", p, err)
	}
	if acme, err := db.TeamBySlug(ctx, "acme"); err != nil || acme.Quotas.MaxSandboxes == nil || *acme.Quotas.MaxSandboxes != 3 {
		t.Fatalf("acme after teams set: %+v, %v", acme, err)
	}
	for _, tt := range []struct{ store, want string }{
		{"postgres://postgres@/no_such_database?host=/nonexistent&sslmode=disable", "keys:"},
		{filepath.Join(t.TempDir(), "none.db"), "no store at"},
	} {
		_, err := captureStdout(t, func() error { return keys(ctx, []string{"list", "--store", tt.store}) })
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("keys list --store %s: %v, want an error containing %q", tt.store, err, tt.want)
		}
	}
}
