package storetest

import (
	"context"
	"reflect"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/store"
)

func testAPIKeys(t *testing.T, e *env) {
	ctx := context.Background()
	db := e.open(t)
	e.setClock(db, base())
	k1 := &store.APIKey{ID: "k1", TeamID: store.DefaultTeamID, Name: "first", Hash: "aa11", Prefix: "e2b_aa", Suffix: "aa11"}
	k2 := &store.APIKey{ID: "k2", TeamID: store.DefaultTeamID, Name: "second", Hash: "bb22", Prefix: "e2b_bb", CreatedAt: base().Add(time.Hour)}
	for _, k := range []*store.APIKey{k1, k2} {
		if err := db.InsertAPIKey(ctx, k); err != nil {
			t.Fatalf("InsertAPIKey(%s): %v", k.ID, err)
		}
	}
	if !k1.CreatedAt.Equal(base()) || !k2.CreatedAt.Equal(base().Add(time.Hour)) {
		t.Fatalf("CreatedAt = %v, %v", k1.CreatedAt, k2.CreatedAt)
	}

	errTests := []struct {
		name string
		call func() error
		want error
	}{
		{"duplicate ID", func() error {
			return db.InsertAPIKey(ctx, &store.APIKey{ID: "k1", TeamID: store.DefaultTeamID, Hash: "new"})
		}, store.ErrExists},
		{"duplicate hash", func() error {
			return db.InsertAPIKey(ctx, &store.APIKey{ID: "k3", TeamID: store.DefaultTeamID, Hash: "aa11"})
		}, store.ErrExists},
		{"missing hash", func() error { return db.InsertAPIKey(ctx, &store.APIKey{ID: "k3", TeamID: store.DefaultTeamID}) }, store.ErrInvalid},
		{"missing team", func() error { return db.InsertAPIKey(ctx, &store.APIKey{ID: "k3", Hash: "cc33"}) }, store.ErrInvalid},
		{"unknown team", func() error { return db.InsertAPIKey(ctx, &store.APIKey{ID: "k3", TeamID: "nope", Hash: "cc33"}) }, store.ErrNotFound},
		{"rename unknown", func() error { return db.RenameAPIKey(ctx, "nope", "x") }, store.ErrNotFound},
		{"get unknown", func() error { _, err := db.GetAPIKey(ctx, "nope"); return err }, store.ErrNotFound},
		{"nil key", func() error { return db.InsertAPIKey(ctx, nil) }, store.ErrInvalid},
		{"unknown hash", func() error { _, err := db.APIKeyByHash(ctx, "ffff"); return err }, store.ErrNotFound},
		{"revoke unknown", func() error { return db.RevokeAPIKey(ctx, "nope") }, store.ErrNotFound},
		{"touch unknown", func() error { return db.TouchAPIKey(ctx, "nope", base()) }, store.ErrNotFound},
		{"touch with zero time", func() error { return db.TouchAPIKey(ctx, "k1", time.Time{}) }, store.ErrInvalid},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) { wantErr(t, tt.name, tt.call(), tt.want) })
	}

	got, err := db.APIKeyByHash(ctx, "aa11")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, k1) {
		t.Fatalf("APIKeyByHash = %+v, want %+v", got, k1)
	}

	// Touch only moves forward.
	for _, at := range []time.Time{base().Add(2 * time.Minute), base().Add(time.Minute)} {
		if err := db.TouchAPIKey(ctx, "k1", at); err != nil {
			t.Fatal(err)
		}
	}
	// Revoking twice keeps the first time; a revoked key is still found.
	e.setClock(db, base().Add(3*time.Minute))
	if err := db.RevokeAPIKey(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	e.setClock(db, base().Add(4*time.Minute))
	if err := db.RevokeAPIKey(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	got, err = db.APIKeyByHash(ctx, "aa11")
	if err != nil {
		t.Fatalf("revoked key lookup: %v", err)
	}
	if got.LastUsedAt == nil || !got.LastUsedAt.Equal(base().Add(2*time.Minute)) {
		t.Errorf("LastUsedAt = %v, want %v", got.LastUsedAt, base().Add(2*time.Minute))
	}
	if got.RevokedAt == nil || !got.RevokedAt.Equal(base().Add(3*time.Minute)) {
		t.Errorf("RevokedAt = %v, want %v", got.RevokedAt, base().Add(3*time.Minute))
	}

	list, err := db.ListAPIKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != "k1" || list[1].ID != "k2" {
		t.Fatalf("ListAPIKeys = %+v", list)
	}
	if list[1].RevokedAt != nil || list[1].LastUsedAt != nil {
		t.Errorf("untouched key k2 = %+v", list[1])
	}
}
