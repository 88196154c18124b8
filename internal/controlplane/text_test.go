package controlplane

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"lelantos.dev/lelantos/internal/controlplane/controlplanetest"
	"lelantos.dev/lelantos/internal/store"
	"lelantos.dev/lelantos/internal/store/pgtest"
)

// TestTextTheStoreCannotHold: text a store cannot hold (PostgreSQL cannot
// store a NUL byte or invalid UTF-8; the store refuses it on SQLite too) in a
// client's request is the client's error, a 400 naming the field, never an
// internal error; a lookup of such a name is not found.
func TestTextTheStoreCannotHold(t *testing.T) {
	for _, backend := range []struct {
		name     string
		location func(testing.TB) string
	}{
		{"sqlite", func(tb testing.TB) string { return filepath.Join(tb.TempDir(), "lelantos.db") }},
		{"postgres", pgtest.NewDatabase},
	} {
		t.Run(backend.name, func(t *testing.T) {
			ctx := context.Background()
			db, err := store.Open(ctx, backend.location(t))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if err := db.PutTemplate(ctx, &store.Template{ID: "base", Status: store.TemplateReady, Public: true}); err != nil {
				t.Fatal(err)
			}
			svc, err := New(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, db, controlplanetest.NewNode())
			if err != nil {
				t.Fatal(err)
			}
			for _, bad := range []string{"a\x00b", "\xff"} {
				for what, call := range map[string]func() error{
					"metadata key": func() error {
						_, err := svc.Create(ctx, defTeam, CreateRequest{TemplateID: "base", Metadata: map[string]string{bad: "v"}})
						return err
					},
					"metadata value": func() error {
						_, err := svc.Create(ctx, defTeam, CreateRequest{TemplateID: "base", Metadata: map[string]string{"k": bad}})
						return err
					},
					"API key name": func() error { _, _, err := CreateTeamAPIKey(ctx, db, defTeam, bad); return err },
				} {
					if err := call(); !errors.Is(err, ErrInvalidArgument) {
						t.Errorf("%s %q: %v, want ErrInvalidArgument", what, bad, err)
					}
				}
				if _, err := svc.Create(ctx, defTeam, CreateRequest{TemplateID: bad}); !errors.Is(err, ErrInvalidArgument) {
					t.Errorf("template %q: %v, want ErrInvalidArgument (not found)", bad, err)
				}
				if _, err := svc.Get(ctx, defTeam, bad); !errors.Is(err, ErrNotFound) {
					t.Errorf("sandbox %q: %v, want ErrNotFound", bad, err)
				}
			}
		})
	}
}
