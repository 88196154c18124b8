package store

import (
	"context"
	"reflect"
	"testing"
	"time"
)

func TestTemplates(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	fixedClock(db, base())
	baseTpl := &Template{
		ID: "base", BuildID: "b1", RootfsPath: "/var/lib/lelantos/base/b1", CPUCount: 2,
		MemoryMB: 512, DiskSizeMB: 2048, StartCmd: "start", ReadyCmd: "ready",
		EnvdVersion: "0.6.4", Status: TemplateReady, Public: true,
		Aliases: []string{"default", "b", "default"},
	}
	py := &Template{ID: "python", BuildID: "p1", Status: TemplateBuilding}
	for _, tp := range []*Template{baseTpl, py} {
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
		{"missing", "", ErrNotFound},
	}
	for _, tt := range lookups {
		t.Run("get "+tt.key, func(t *testing.T) {
			got, err := db.FindTemplate(ctx, DefaultTeamID, tt.key)
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
		tpl  *Template
		want error
	}{
		{"alias owned by another template", &Template{ID: "python", Aliases: []string{"default"}}, ErrExists},
		{"alias is another template's ID", &Template{ID: "python", Aliases: []string{"base"}}, ErrExists},
		{"ID is another template's alias", &Template{ID: "default"}, ErrExists},
		{"empty alias", &Template{ID: "python", Aliases: []string{""}}, ErrInvalid},
		{"empty ID", &Template{}, ErrInvalid},
		{"nil", nil, ErrInvalid},
	}
	for _, tt := range conflicts {
		t.Run(tt.name, func(t *testing.T) { wantErr(t, tt.name, db.PutTemplate(ctx, tt.tpl), tt.want) })
	}
	// Failed puts changed nothing.
	if got, err := db.GetTemplate(ctx, "python"); err != nil || got.BuildID != "p1" || len(got.Aliases) != 0 {
		t.Fatalf("python after refused puts = %+v, %v", got, err)
	}

	// Replacing keeps CreatedAt, replaces fields and aliases.
	fixedClock(db, base().Add(time.Hour))
	next := *baseTpl
	next.BuildID, next.Status, next.Aliases, next.CreatedAt = "b2", TemplateError, []string{"latest"}, time.Time{}
	if err := db.PutTemplate(ctx, &next); err != nil {
		t.Fatal(err)
	}
	if !next.CreatedAt.Equal(base()) || !next.UpdatedAt.Equal(base().Add(time.Hour)) {
		t.Fatalf("times after replace: %v %v", next.CreatedAt, next.UpdatedAt)
	}
	wantErr(t, "old alias", func() error { _, err := db.FindTemplate(ctx, DefaultTeamID, "default"); return err }(), ErrNotFound)
	if got, err := db.FindTemplate(ctx, DefaultTeamID, "latest"); err != nil || !reflect.DeepEqual(got, &next) {
		t.Fatalf("after replace = %+v, %v; want %+v", got, err, &next)
	}
	// The freed alias can go to another template.
	if err := db.PutTemplate(ctx, &Template{ID: "python", Aliases: []string{"default"}}); err != nil {
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
	wantErr(t, "delete again", db.DeleteTemplate(ctx, "base"), ErrNotFound)
	wantErr(t, "alias of deleted", func() error { _, err := db.FindTemplate(ctx, DefaultTeamID, "latest"); return err }(), ErrNotFound)
	if n := countRows(t, db, "template_aliases", "template_id = 'base'"); n != 0 {
		t.Errorf("%d aliases of the deleted template remain", n)
	}
}
