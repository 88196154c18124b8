package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/store"
)

// testText: text that is not UTF-8, or holds a NUL byte, is refused by a
// write (ErrText, an ErrInvalid), and a lookup of it finds nothing
// (ErrNotFound, an empty list), the same on every database (PostgreSQL
// cannot store such text at all).
func testText(t *testing.T, e *env) {
	ctx := context.Background()
	db := e.open(t)
	mustInsert(t, db, newSandbox("sbx1"))
	if err := db.PutTemplate(ctx, &store.Template{ID: "base", Aliases: []string{"latest"}}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"a\x00b", "\xff", "ok\xc3"} {
		writes := map[string]func() error{
			"metadata key": func() error {
				s := newSandbox("sbx2")
				s.Metadata = map[string]string{bad: "v"}
				return db.InsertSandbox(ctx, s)
			},
			"metadata value": func() error {
				s := newSandbox("sbx2")
				s.Metadata = map[string]string{"k": bad}
				return db.InsertSandbox(ctx, s)
			},
			"an update's metadata": func() error {
				s, err := db.GetSandbox(ctx, "sbx1")
				if err != nil {
					return err
				}
				s.Metadata = map[string]string{"k": bad}
				return db.UpdateSandbox(ctx, s)
			},
			"sandbox ID":     func() error { return db.InsertSandbox(ctx, newSandbox(bad)) },
			"template alias": func() error { return db.PutTemplate(ctx, &store.Template{ID: "t2", Aliases: []string{bad}}) },
			"key name": func() error {
				return db.InsertAPIKey(ctx, &store.APIKey{ID: "k", TeamID: store.DefaultTeamID, Name: bad, Hash: "h"})
			},
			"team name": func() error { return db.InsertTeam(ctx, &store.Team{ID: "t", Slug: "t", Name: bad}) },
			"event line": func() error {
				return db.AppendEvent(ctx, "sbx1", store.Event{Timestamp: base(), Line: bad})
			},
			// A write names what it changes by text the database can hold.
			"delete of a sandbox": func() error { return db.DeleteSandbox(ctx, bad) },
		}
		for what, write := range writes {
			if err := write(); !errors.Is(err, store.ErrText) {
				t.Errorf("%s %q: %v, want ErrText", what, bad, err)
			}
		}
		absent(t, db, "sbx2")
		if s, err := db.GetSandbox(ctx, "sbx1"); err != nil || s.Metadata["k"] != "" || s.Version != 1 {
			t.Errorf("a refused update changed sbx1: %+v, %v", s, err)
		}

		lookups := map[string]func() error{
			"sandbox":  func() error { _, err := db.GetSandbox(ctx, bad); return err },
			"template": func() error { _, err := db.GetTemplate(ctx, bad); return err },
			"template by name": func() error {
				_, err := db.FindTemplate(ctx, store.DefaultTeamID, bad)
				return err
			},
			"template of a team": func() error { _, err := db.FindTemplate(ctx, bad, "base"); return err },
			"key":                func() error { _, err := db.GetAPIKey(ctx, bad); return err },
			"key by hash":        func() error { _, err := db.APIKeyByHash(ctx, bad); return err },
			"team":               func() error { _, err := db.GetTeam(ctx, bad); return err },
			"team by slug":       func() error { _, err := db.TeamBySlug(ctx, bad); return err },
			"build":              func() error { _, err := db.GetTemplateBuild(ctx, bad); return err },
			"volume":             func() error { _, err := db.GetVolume(ctx, bad); return err },
			"lease":              func() error { _, err := db.GetLease(ctx, bad); return err },
		}
		for what, lookup := range lookups {
			if err := lookup(); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s %q: %v, want ErrNotFound", what, bad, err)
			}
		}
		lists := map[string]func() (int, error){
			"sandboxes by metadata": func() (int, error) {
				items, _, err := db.ListSandboxes(ctx, store.SandboxFilter{Metadata: map[string]string{"owner": bad}})
				return len(items), err
			},
			"sandboxes of a team": func() (int, error) {
				items, _, err := db.ListSandboxes(ctx, store.SandboxFilter{TeamID: bad})
				return len(items), err
			},
			"snapshots of a sandbox": func() (int, error) {
				items, _, err := db.ListSnapshots(ctx, store.SnapshotFilter{TeamID: store.DefaultTeamID, SandboxID: bad})
				return len(items), err
			},
			"events": func() (int, error) {
				items, err := db.ListEvents(ctx, bad, time.Time{}, 0)
				return len(items), err
			},
			"templates of a team": func() (int, error) {
				items, err := db.ListTeamTemplates(ctx, bad)
				// The public ones are listed for any team.
				return len(items), err
			},
		}
		for what, list := range lists {
			if n, err := list(); err != nil || n != 0 {
				t.Errorf("%s %q: %d listed, %v; want none", what, bad, n, err)
			}
		}
	}
}
