package controlplane

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/store"
)

// unknownID is a well-formed sandbox ID no sandbox has.
const unknownID = "zzzzzzzzzzzzzzzzzzzz"

// newTeam makes a team with these quotas or fails the test.
func newTeam(t *testing.T, h *harness, slug string, q store.QuotaSettings) *store.Team {
	t.Helper()
	team, err := CreateTeam(context.Background(), h.db, slug, "", q)
	if err != nil {
		t.Fatal(err)
	}
	return team
}

// TestCrossTeamSandboxAccess: team B calls every sandbox operation on team
// A's sandboxes (one running, one paused). Each is not found, with exactly
// the error of an unknown ID, and changes nothing.
func TestCrossTeamSandboxAccess(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	b := newTeam(t, h, "beta", store.QuotaSettings{})
	running := h.create(t, CreateRequest{Metadata: map[string]string{"owner": "a"}})
	paused := h.create(t, CreateRequest{})
	if err := h.svc.Pause(ctx, defTeam, paused.ID); err != nil {
		t.Fatal(err)
	}
	ops := []struct {
		name string
		call func(id string) error
	}{
		{"get", func(id string) error { _, err := h.svc.Get(ctx, b.ID, id); return err }},
		{"kill", func(id string) error { return h.svc.Kill(ctx, b.ID, id) }},
		{"pause", func(id string) error { return h.svc.Pause(ctx, b.ID, id) }},
		{"resume", func(id string) error { _, err := h.svc.Resume(ctx, b.ID, id, ResumeRequest{}); return err }},
		{"connect", func(id string) error { _, _, err := h.svc.Connect(ctx, b.ID, id, time.Hour); return err }},
		{"set timeout", func(id string) error { return h.svc.SetTimeout(ctx, b.ID, id, time.Second) }},
		{"refresh", func(id string) error { return h.svc.Refresh(ctx, b.ID, id, time.Hour) }},
		{"logs", func(id string) error { _, err := h.svc.Logs(ctx, b.ID, id, LogQuery{Limit: 10}); return err }},
		{"metrics", func(id string) error { _, err := h.svc.Metrics(ctx, b.ID, id, time.Time{}, time.Time{}); return err }},
	}
	for _, victim := range []*store.Sandbox{running, paused} {
		before := h.stored(t, victim.ID)
		for _, op := range ops {
			t.Run(victim.State+"/"+op.name, func(t *testing.T) {
				err := op.call(victim.ID)
				unknown := op.call(unknownID)
				if !errors.Is(err, ErrNotFound) {
					t.Fatalf("team B: %v, want not found", err)
				}
				if want := strings.ReplaceAll(unknown.Error(), unknownID, victim.ID); err.Error() != want {
					t.Fatalf("team B got %q; an unknown ID gets %q", err, want)
				}
			})
		}
		after := h.stored(t, victim.ID)
		if after == nil || after.Version != before.Version || after.State != before.State || !after.EndAt.Equal(before.EndAt) {
			t.Errorf("team B changed %s: %+v -> %+v", victim.ID, before, after)
		}
	}
	if n := h.node.Calls("kill") + h.node.Calls("resume"); n != 0 {
		t.Errorf("the node got %d kill or resume calls from team B", n)
	}
	for _, md := range []map[string]string{nil, {"owner": "a"}} {
		page, _, err := h.svc.List(ctx, b.ID, ListRequest{Metadata: md})
		if err != nil || len(page) != 0 {
			t.Errorf("team B lists %d sandboxes, %v", len(page), err)
		}
		all, err := h.svc.ListRunning(ctx, b.ID, md)
		if err != nil || len(all) != 0 {
			t.Errorf("team B lists %d running sandboxes, %v", len(all), err)
		}
	}
	if page, _, err := h.svc.List(ctx, defTeam, ListRequest{}); err != nil || len(page) != 2 {
		t.Errorf("team A lists %d sandboxes, %v; want its 2", len(page), err)
	}
	if _, _, err := h.svc.List(ctx, "", ListRequest{}); err == nil {
		t.Error("a listing for no team succeeded")
	}
	// Team A still reaches both.
	if _, err := h.svc.Get(ctx, defTeam, running.ID); err != nil {
		t.Errorf("team A: %v", err)
	}
	if _, err := h.svc.Resume(ctx, defTeam, paused.ID, ResumeRequest{}); err != nil {
		t.Errorf("team A resumes its sandbox: %v", err)
	}
}

// TestCrossTeamTemplates: team B neither sees, uses, deletes nor builds over
// team A's private template, follows none of its builds, and still uses the
// public base; its own template of the same name is a different one.
func TestCrossTeamTemplates(t *testing.T) {
	ctx := context.Background()
	h, fb := templateHarness(t)
	b := newTeam(t, h, "beta", store.QuotaSettings{})
	aID, aBuild, err := h.svc.BuildTemplate(ctx, defTeam, TemplateBuildRequest{Name: "web", Dockerfile: "FROM base\n"})
	if err != nil || aID != "web" {
		t.Fatalf("team A's build: %q %v", aID, err)
	}
	fb.finish(t, aBuild, BuildReady)

	notFoundLike := func(t *testing.T, what string, err, unknown error, ref string) {
		t.Helper()
		if err == nil || unknown == nil {
			t.Fatalf("%s: %v (an unknown name: %v), want errors", what, err, unknown)
		}
		if want := strings.ReplaceAll(unknown.Error(), "nope", ref); err.Error() != want {
			t.Fatalf("%s: %q, an unknown name gets %q", what, err, want)
		}
	}
	for _, ref := range []string{"web", aID} {
		_, err := h.svc.GetTemplate(ctx, b.ID, ref)
		_, unknown := h.svc.GetTemplate(ctx, b.ID, "nope")
		notFoundLike(t, "get "+ref, err, unknown, ref)
		notFoundLike(t, "delete "+ref, h.svc.DeleteTemplate(ctx, b.ID, ref), h.svc.DeleteTemplate(ctx, b.ID, "nope"), ref)
		_, err = h.svc.Create(ctx, b.ID, CreateRequest{TemplateID: ref})
		_, unknown = h.svc.Create(ctx, b.ID, CreateRequest{TemplateID: "nope"})
		notFoundLike(t, "create from "+ref, err, unknown, ref)
		_, err = h.svc.TemplateBuildStatus(ctx, b.ID, ref, aBuild)
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("build status of A's build via %s: %v", ref, err)
		}
		if _, err := h.svc.TemplateBuildLogs(ctx, b.ID, ref, aBuild, 0, 0); !errors.Is(err, ErrNotFound) {
			t.Errorf("build logs of A's build via %s: %v", ref, err)
		}
	}
	list, err := h.svc.ListTemplates(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, i := range list {
		seen = append(seen, i.Template.ID)
	}
	if strings.Join(seen, ",") != "base" {
		t.Errorf("team B sees templates %v, want only the public base", seen)
	}

	// Its own web is another template, built under another ID.
	bID, bBuild, err := h.svc.BuildTemplate(ctx, b.ID, TemplateBuildRequest{Name: "web", Dockerfile: "FROM web\n"})
	if err != nil || bID == aID || !strings.HasPrefix(bID, "web-") || len(bID) > 63 {
		t.Fatalf("team B's build of web: %q %v", bID, err)
	}
	breq := fb.started[len(fb.started)-1]
	if breq.Name != bID || breq.BuildID != bBuild || breq.FromTemplate == nil {
		t.Fatalf("the builder got %+v", breq)
	}
	// FROM in team B's build cannot reach team A's private templates.
	for _, ref := range []string{"web", aID, "big", "large"} {
		if tpl, err := breq.FromTemplate(ctx, ref); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("FROM %s in team B's build found %+v, %v", ref, tpl, err)
		}
	}
	if _, err := h.svc.TemplateBuildStatus(ctx, defTeam, "web", bBuild); !errors.Is(err, ErrNotFound) {
		t.Errorf("team A follows team B's build: %v", err)
	}
	fb.finish(t, bBuild, BuildReady)
	if got, err := h.svc.GetTemplate(ctx, b.ID, "web"); err != nil || got.Template.ID != bID || got.Template.TeamID != b.ID {
		t.Fatalf("team B's web = %+v, %v", got, err)
	}
	if got, err := h.svc.GetTemplate(ctx, defTeam, "web"); err != nil || got.Template.ID != aID || len(got.Builds) != 1 {
		t.Fatalf("team A's web after team B's build = %+v, %v", got, err)
	}
	sb, err := h.svc.Create(ctx, b.ID, CreateRequest{TemplateID: "web"})
	if err != nil || sb.TemplateID != bID || sb.Alias != "web" || sb.TeamID != b.ID {
		t.Fatalf("team B's create from web: %+v, %v", sb, err)
	}
	if b, err := h.svc.TemplateBuildStatus(ctx, b.ID, "web", bBuild); err != nil || b.Status != BuildReady {
		t.Errorf("team B follows its build by name: %+v, %v", b, err)
	}
}

// TestPublicTemplates: base is public; team B creates from it, sees it, and
// cannot delete it.
func TestPublicTemplates(t *testing.T) {
	ctx := context.Background()
	h, _ := templateHarness(t)
	b := newTeam(t, h, "beta", store.QuotaSettings{})
	sb, err := h.svc.Create(ctx, b.ID, CreateRequest{})
	if err != nil || sb.TemplateID != "base" {
		t.Fatalf("team B's create from the default template: %+v, %v", sb, err)
	}
	list, err := h.svc.ListTemplates(ctx, b.ID)
	if err != nil || len(list) != 1 || list[0].Template.ID != "base" {
		t.Fatalf("team B's templates: %+v, %v", list, err)
	}
	if err := h.svc.DeleteTemplate(ctx, b.ID, "base"); !errors.Is(err, ErrConflict) {
		t.Errorf("team B deletes base: %v, want conflict", err)
	}
}
