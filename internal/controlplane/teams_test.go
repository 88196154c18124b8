package controlplane

import (
	"context"
	"errors"
	"sync"
	"testing"

	"lelantos.dev/lelantos/internal/store"
)

func TestTeamManagement(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	neg := -1
	for _, tt := range []struct {
		name, slug string
		q          store.QuotaSettings
		want       error
	}{
		{"a slug with capitals", "Acme", store.QuotaSettings{}, ErrInvalidArgument},
		{"a slug with a slash", "a/b", store.QuotaSettings{}, ErrInvalidArgument},
		{"an empty slug", "", store.QuotaSettings{}, ErrInvalidArgument},
		{"a negative quota", "acme", store.QuotaSettings{MaxBuilds: &neg}, ErrInvalidArgument},
		{"the default team again", "default", store.QuotaSettings{}, ErrConflict},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := CreateTeam(ctx, h.db, tt.slug, "", tt.q); !errors.Is(err, tt.want) {
				t.Fatalf("CreateTeam(%q): %v, want %v", tt.slug, err, tt.want)
			}
		})
	}
	// Concurrent ensures of one slug make one team.
	var wg sync.WaitGroup
	ids := make([]string, 8)
	created := make([]bool, 8)
	for i := range ids {
		wg.Go(func() {
			team, c, err := EnsureTeam(ctx, h.db, "acme")
			if err != nil {
				t.Error(err)
				return
			}
			ids[i], created[i] = team.ID, c
		})
	}
	wg.Wait()
	n := 0
	for i := range ids {
		if ids[i] != ids[0] {
			t.Fatalf("EnsureTeam gave teams %v", ids)
		}
		if created[i] {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d ensures say they created the team, want 1", n)
	}
	if err := UpdateTeam(ctx, h.db, &store.Team{ID: "nope", Slug: "nope"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("update of an unknown team: %v", err)
	}
}

func TestAccountsScopeKeysToTheTeam(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	acc := NewAccounts(h.db)
	b := newTeam(t, h, "beta", store.QuotaSettings{})
	_, aKey, err := CreateAPIKey(ctx, h.db, "a")
	if err != nil {
		t.Fatal(err)
	}
	_, bKey, err := acc.CreateKey(ctx, b.ID, "b")
	if err != nil {
		t.Fatal(err)
	}
	login, err := acc.LoginKey(ctx, b.ID)
	if err != nil || !keyPattern.MatchString(login) {
		t.Fatalf("LoginKey: %q %v", login, err)
	}
	keys, err := acc.ListKeys(ctx, b.ID)
	if err != nil || len(keys) != 2 || keys[0].ID != bKey.ID || keys[1].Name != CLIKeyName {
		t.Fatalf("team B's keys: %+v, %v", keys, err)
	}
	for _, tt := range []struct {
		name string
		err  error
		want error
	}{
		{"rename another team's key", acc.RenameKey(ctx, b.ID, aKey.ID, "mine"), ErrNotFound},
		{"delete another team's key", acc.DeleteKey(ctx, b.ID, aKey.ID), ErrNotFound},
		{"delete an unknown key", acc.DeleteKey(ctx, b.ID, "00000000-0000-4000-8000-000000000000"), ErrNotFound},
		{"delete a malformed ID", acc.DeleteKey(ctx, b.ID, "key_0123"), ErrInvalidArgument},
		{"rename to nothing", acc.RenameKey(ctx, b.ID, bKey.ID, " "), ErrInvalidArgument},
		{"a key of an unknown team", func() error { _, _, err := acc.CreateKey(ctx, "nope", "x"); return err }(), ErrNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if !errors.Is(tt.err, tt.want) {
				t.Fatalf("%v, want %v", tt.err, tt.want)
			}
		})
	}
	if k, _ := h.db.GetAPIKey(ctx, aKey.ID); k.Name != "a" || k.RevokedAt != nil {
		t.Fatalf("team A's key after team B's attempts: %+v", k)
	}
	if err := acc.RenameKey(ctx, b.ID, bKey.ID, "renamed"); err != nil {
		t.Fatal(err)
	}
	if err := acc.DeleteKey(ctx, b.ID, bKey.ID); err != nil {
		t.Fatal(err)
	}
	keys, _ = acc.ListKeys(ctx, b.ID)
	if len(keys) != 1 || keys[0].Name != CLIKeyName {
		t.Fatalf("team B's keys after the delete: %+v", keys)
	}
	if err := acc.DeleteKey(ctx, b.ID, bKey.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete twice: %v", err)
	}
}
