package storetest

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/store"
)

// testListScopedByTeam: a listing with TeamID returns that team's sandboxes
// only, with every other filter and across pages.
func testListScopedByTeam(t *testing.T, e *env) {
	ctx := context.Background()
	db := e.open(t)
	mustTeam(t, db, "acme", store.QuotaSettings{})
	var all []*store.Sandbox
	for i := range 30 {
		s := newSandbox(fmt.Sprintf("sb%02d", i))
		if i%3 == 0 {
			s.TeamID = "team-acme"
		}
		s.StartedAt = base().Add(time.Duration(i%7) * time.Second)
		s.Metadata = map[string]string{"owner": "alice", "i": fmt.Sprint(i % 2)}
		all = append(all, s)
	}
	mustInsert(t, db, all...)
	filters := []store.SandboxFilter{
		{},
		{States: []string{store.StateRunning}},
		{TemplateID: "base"},
		{Metadata: map[string]string{"owner": "alice"}},
		{Metadata: map[string]string{"owner": "alice", "i": "0"}, Descending: true},
	}
	for _, team := range []string{"team-acme", store.DefaultTeamID, "team-none"} {
		for i, f := range filters {
			t.Run(fmt.Sprintf("%s/%d", team, i), func(t *testing.T) {
				f.TeamID, f.Limit = team, 4
				var got []string
				for {
					items, next, err := db.ListSandboxes(ctx, f)
					if err != nil {
						t.Fatal(err)
					}
					for _, s := range items {
						if s.TeamID != team {
							t.Fatalf("listed %s of team %s for team %s", s.ID, s.TeamID, team)
						}
						got = append(got, s.ID)
					}
					if next == "" {
						break
					}
					f.Cursor = next
				}
				var mine []*store.Sandbox
				for _, s := range all {
					if s.TeamID == team {
						mine = append(mine, s)
					}
				}
				f.Cursor, f.Limit = "", 0
				if want := expectList(mine, f); !slices.Equal(got, want) {
					t.Fatalf("listed %v, want %v", got, want)
				}
			})
		}
	}
	// An update keeps the team, whatever the caller's copy says.
	s := all[0]
	s.TeamID, s.Version = store.DefaultTeamID, 1
	if err := db.UpdateSandbox(ctx, s); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.GetSandbox(ctx, s.ID); got.TeamID != "team-acme" {
		t.Fatalf("an update moved the sandbox to team %s", got.TeamID)
	}
	items, _, err := db.ListSandboxes(ctx, store.SandboxFilter{TeamID: "team-acme", Metadata: map[string]string{"owner": "alice"}})
	if err != nil || !slices.ContainsFunc(items, func(x *store.Sandbox) bool { return x.ID == s.ID }) {
		t.Fatalf("the updated sandbox left its team's metadata listing: %v", err)
	}
}

// testTemplatesPerTeam: names are per team, lookups see the caller's own
// templates and public ones, never another team's private one.
func testTemplatesPerTeam(t *testing.T, e *env) {
	ctx := context.Background()
	db := e.open(t)
	mustTeam(t, db, "acme", store.QuotaSettings{})
	mustTeam(t, db, "beta", store.QuotaSettings{})
	for _, tp := range []*store.Template{
		{ID: "base", Status: store.TemplateReady, Public: true},
		{ID: "web", Status: store.TemplateReady},
		{ID: "acme-web-id", TeamID: "team-acme", Name: "web", Aliases: []string{"site"}, Status: store.TemplateReady},
		{ID: "beta-web-id", TeamID: "team-beta", Name: "web", Status: store.TemplateReady},
		{ID: "beta-tools-id", TeamID: "team-beta", Name: "tools", Public: true, Aliases: []string{"kit"}, Status: store.TemplateReady},
	} {
		if err := db.PutTemplate(ctx, tp); err != nil {
			t.Fatalf("PutTemplate(%s): %v", tp.ID, err)
		}
	}
	lookups := []struct {
		team, ref, wantID string
	}{
		{"team-acme", "web", "acme-web-id"},
		{"team-acme", "site", "acme-web-id"},
		{"team-acme", "acme-web-id", "acme-web-id"},
		{"team-acme", "base", "base"},
		{"team-acme", "tools", "beta-tools-id"},
		{"team-acme", "kit", "beta-tools-id"},
		{"team-acme", "beta-web-id", ""},
		{"team-acme", "nothing", ""},
		{"team-beta", "web", "beta-web-id"},
		{"team-beta", "site", ""},
		{"team-beta", "acme-web-id", ""},
		{store.DefaultTeamID, "web", "web"},
		{store.DefaultTeamID, "acme-web-id", ""},
		{"team-none", "web", ""},
	}
	for _, tt := range lookups {
		t.Run(tt.team+"/"+tt.ref, func(t *testing.T) {
			got, err := db.FindTemplate(ctx, tt.team, tt.ref)
			if tt.wantID == "" {
				wantErr(t, "find", err, store.ErrNotFound)
				return
			}
			if err != nil || got.ID != tt.wantID {
				t.Fatalf("FindTemplate = %+v, %v; want %s", got, err, tt.wantID)
			}
		})
	}
	visible := map[string][]string{
		"team-acme":         {"acme-web-id", "base", "beta-tools-id"},
		"team-beta":         {"base", "beta-tools-id", "beta-web-id"},
		store.DefaultTeamID: {"base", "beta-tools-id", "web"},
	}
	for team, want := range visible {
		list, err := db.ListTeamTemplates(ctx, team)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, tp := range list {
			ids = append(ids, tp.ID)
		}
		if !slices.Equal(ids, want) {
			t.Errorf("templates of %s = %v, want %v", team, ids, want)
		}
	}

	conflicts := []struct {
		name string
		tpl  *store.Template
		want error
	}{
		{"another team's ID", &store.Template{ID: "acme-web-id", TeamID: "team-beta"}, store.ErrExists},
		{"a second web in one team", &store.Template{ID: "acme-web-2", TeamID: "team-acme", Name: "web"}, store.ErrExists},
		{"a name that is an alias in the team", &store.Template{ID: "acme-site", TeamID: "team-acme", Name: "site"}, store.ErrExists},
		{"an alias that is a name in the team", &store.Template{ID: "acme-x", TeamID: "team-acme", Aliases: []string{"web"}}, store.ErrExists},
		{"an unknown team", &store.Template{ID: "lost", TeamID: "team-none"}, store.ErrNotFound},
	}
	for _, tt := range conflicts {
		t.Run(tt.name, func(t *testing.T) { wantErr(t, tt.name, db.PutTemplate(ctx, tt.tpl), tt.want) })
	}
	// Another team may use the same alias.
	if err := db.PutTemplate(ctx, &store.Template{ID: "beta-site", TeamID: "team-beta", Name: "site"}); err != nil {
		t.Fatalf("beta's own site: %v", err)
	}
	// A put without team or name (as the template builder does) keeps both.
	rebuilt := &store.Template{ID: "acme-web-id", BuildID: "b2", Status: store.TemplateReady, Aliases: []string{"site"}}
	if err := db.PutTemplate(ctx, rebuilt); err != nil {
		t.Fatal(err)
	}
	if rebuilt.TeamID != "team-acme" || rebuilt.Name != "web" {
		t.Fatalf("after a put without team: team %q name %q", rebuilt.TeamID, rebuilt.Name)
	}
	got, err := db.GetTemplate(ctx, "acme-web-id")
	if err != nil || !reflect.DeepEqual(got, rebuilt) {
		t.Fatalf("GetTemplate = %+v, %v; want %+v", got, err, rebuilt)
	}
	// The first build of a template registers it in the team that started
	// the build, under the name it gave.
	if err := db.InsertTemplateBuild(ctx, &store.TemplateBuild{ID: "b-new", TeamID: "team-beta", TemplateID: "beta-api-id",
		Name: "api"}, store.Quotas{}); err != nil {
		t.Fatal(err)
	}
	first := &store.Template{ID: "beta-api-id", BuildID: "b-new", Status: store.TemplateReady}
	if err := db.PutTemplate(ctx, first); err != nil {
		t.Fatal(err)
	}
	if first.TeamID != "team-beta" || first.Name != "api" {
		t.Fatalf("first build registered in team %q as %q, want team-beta and api", first.TeamID, first.Name)
	}
	if got, err := db.FindTemplate(ctx, "team-acme", "api"); err == nil {
		t.Fatalf("acme sees beta's new private template: %+v", got)
	}
}

// testTeamAPIKeys: keys are listed per team.
func testTeamAPIKeys(t *testing.T, e *env) {
	ctx := context.Background()
	db := e.open(t)
	mustTeam(t, db, "acme", store.QuotaSettings{})
	for i, team := range []string{store.DefaultTeamID, "team-acme", "team-acme"} {
		k := &store.APIKey{ID: fmt.Sprint("k", i), TeamID: team, Name: "n", Hash: fmt.Sprint("h", i), CreatedAt: base()}
		if err := db.InsertAPIKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.RenameAPIKey(ctx, "k2", "renamed"); err != nil {
		t.Fatal(err)
	}
	list, err := db.ListTeamAPIKeys(ctx, "team-acme")
	if err != nil || len(list) != 2 || list[0].ID != "k1" || list[1].Name != "renamed" {
		t.Fatalf("keys of acme = %+v, %v", list, err)
	}
	if k, err := db.GetAPIKey(ctx, "k0"); err != nil || k.TeamID != store.DefaultTeamID {
		t.Fatalf("GetAPIKey = %+v, %v", k, err)
	}
	if list, err := db.ListTeamAPIKeys(ctx, "team-none"); err != nil || len(list) != 0 || list == nil {
		t.Fatalf("keys of an unknown team = %#v, %v", list, err)
	}
}
