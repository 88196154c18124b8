package storetest

import (
	"context"
	"reflect"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/store"
)

func testTemplates(t *testing.T, e *env) {
	ctx := context.Background()
	db := e.open(t)
	e.setClock(db, base())
	baseTpl := &store.Template{
		ID: "base", BuildID: "b1", RootfsPath: "/var/lib/lelantos/base/b1", CPUCount: 2,
		MemoryMB: 512, DiskSizeMB: 2048, StartCmd: "start", ReadyCmd: "ready",
		EnvdVersion: "0.6.4", Status: store.TemplateReady, Public: true,
		Aliases: []string{"default", "b", "default"},
	}
	py := &store.Template{ID: "python", BuildID: "p1", Status: store.TemplateBuilding}
	for _, tp := range []*store.Template{baseTpl, py} {
		if err := db.PutTemplate(ctx, tp); err != nil {
			t.Fatalf("PutTemplate(%s): %v", tp.ID, err)
		}
	}
	if !reflect.DeepEqual(baseTpl.Aliases, []string{"b", "default"}) {
		t.Fatalf("aliases normalized to %v", baseTpl.Aliases)
	}
	if !baseTpl.CreatedAt.Equal(base()) || !baseTpl.UpdatedAt.Equal(base()) {
		t.Fatalf("times after put: %v %v", baseTpl.CreatedAt, baseTpl.UpdatedAt)
	}

	lookups := []struct {
		key    string
		wantID string
		want   error
	}{
		{"base", "base", nil},
		{"default", "base", nil},
		{"b", "base", nil},
		{"python", "python", nil},
		{"missing", "", store.ErrNotFound},
	}
	for _, tt := range lookups {
		t.Run("get "+tt.key, func(t *testing.T) {
			got, err := db.FindTemplate(ctx, store.DefaultTeamID, tt.key)
			wantErr(t, tt.key, err, tt.want)
			if tt.want != nil {
				return
			}
			if got.ID != tt.wantID {
				t.Fatalf("GetTemplate(%q).ID = %q, want %q", tt.key, got.ID, tt.wantID)
			}
			if got.ID == "base" && !reflect.DeepEqual(got, baseTpl) {
				t.Fatalf("GetTemplate:\n got %+v\nwant %+v", got, baseTpl)
			}
		})
	}

	conflicts := []struct {
		name string
		tpl  *store.Template
		want error
	}{
		{"alias owned by another template", &store.Template{ID: "python", Aliases: []string{"default"}}, store.ErrExists},
		{"alias is another template's ID", &store.Template{ID: "python", Aliases: []string{"base"}}, store.ErrExists},
		{"ID is another template's alias", &store.Template{ID: "default"}, store.ErrExists},
		{"empty alias", &store.Template{ID: "python", Aliases: []string{""}}, store.ErrInvalid},
		{"empty ID", &store.Template{}, store.ErrInvalid},
		{"nil", nil, store.ErrInvalid},
	}
	for _, tt := range conflicts {
		t.Run(tt.name, func(t *testing.T) { wantErr(t, tt.name, db.PutTemplate(ctx, tt.tpl), tt.want) })
	}
	// Failed puts changed nothing.
	if got, err := db.GetTemplate(ctx, "python"); err != nil || got.BuildID != "p1" || len(got.Aliases) != 0 {
		t.Fatalf("python after refused puts = %+v, %v", got, err)
	}

	// Replacing keeps CreatedAt, replaces fields and aliases.
	e.setClock(db, base().Add(time.Hour))
	next := *baseTpl
	next.BuildID, next.Status, next.Aliases, next.CreatedAt = "b2", store.TemplateError, []string{"latest"}, time.Time{}
	if err := db.PutTemplate(ctx, &next); err != nil {
		t.Fatal(err)
	}
	if !next.CreatedAt.Equal(base()) || !next.UpdatedAt.Equal(base().Add(time.Hour)) {
		t.Fatalf("times after replace: %v %v", next.CreatedAt, next.UpdatedAt)
	}
	wantErr(t, "old alias", func() error { _, err := db.FindTemplate(ctx, store.DefaultTeamID, "default"); return err }(), store.ErrNotFound)
	if got, err := db.FindTemplate(ctx, store.DefaultTeamID, "latest"); err != nil || !reflect.DeepEqual(got, &next) {
		t.Fatalf("after replace = %+v, %v; want %+v", got, err, &next)
	}
	// The freed alias can go to another template.
	if err := db.PutTemplate(ctx, &store.Template{ID: "python", Aliases: []string{"default"}}); err != nil {
		t.Fatalf("reuse freed alias: %v", err)
	}

	list, err := db.ListTemplates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != "base" || list[1].ID != "python" ||
		!reflect.DeepEqual(list[0].Aliases, []string{"latest"}) ||
		!reflect.DeepEqual(list[1].Aliases, []string{"default"}) {
		t.Fatalf("ListTemplates = %+v, %+v", list[0], list[1])
	}

	if err := db.DeleteTemplate(ctx, "base"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "delete again", db.DeleteTemplate(ctx, "base"), store.ErrNotFound)
	wantErr(t, "alias of deleted", func() error { _, err := db.FindTemplate(ctx, store.DefaultTeamID, "latest"); return err }(), store.ErrNotFound)
	// A template made again under the ID inherits none of the aliases.
	if err := db.PutTemplate(ctx, &store.Template{ID: "base"}); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "alias of a deleted template, made again", func() error {
		_, err := db.FindTemplate(ctx, store.DefaultTeamID, "latest")
		return err
	}(), store.ErrNotFound)
}
