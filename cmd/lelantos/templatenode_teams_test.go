package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"

	"lelantos.dev/lelantos/internal/controlplane"
	"lelantos.dev/lelantos/internal/controlplane/controlplanetest"
	"lelantos.dev/lelantos/internal/store"
)

// TestTemplateNodeTeams runs the control plane over the real builder: two
// teams build templates of one name side by side, a team's FROM reaches its
// own and no other team's private template, and the builds of a team count
// against its max-builds quota until the builder ends them.
func TestTemplateNodeTeams(t *testing.T) {
	n, _, db, _ := newTestTemplateNode(t)
	ctx := context.Background()
	svc, err := controlplane.New(controlplane.Config{Templates: n, Builder: n,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, db, controlplanetest.NewNode())
	if err != nil {
		t.Fatal(err)
	}
	one := 1
	beta, err := controlplane.CreateTeam(ctx, db, "beta", "", store.QuotaSettings{MaxBuilds: &one})
	if err != nil {
		t.Fatal(err)
	}
	build := func(team, name, dockerfile, version string) (string, *controlplane.TemplateBuild) {
		t.Helper()
		id, buildID, err := svc.BuildTemplate(ctx, team, controlplane.TemplateBuildRequest{Name: name, Dockerfile: dockerfile,
			Context: testContext(t, version)})
		if err != nil {
			t.Fatalf("build %s of team %s: %v", name, team, err)
		}
		return id, waitBuild(t, n, buildID)
	}

	aID, b := build(store.DefaultTeamID, "web", testDockerfile, "team-a")
	if b.Status != controlplane.BuildReady || aID != "web" {
		t.Fatalf("team A's web: %s %+v", aID, b)
	}
	aWeb, err := db.GetTemplate(ctx, "web")
	if err != nil || aWeb.TeamID != store.DefaultTeamID {
		t.Fatalf("team A's web in the store: %+v, %v", aWeb, err)
	}

	// Team B's FROM cannot reach team A's private web, by name or ID.
	_, b = build(beta.ID, "thief", "FROM web\nENV X=1\n", "b")
	if b.Status != controlplane.BuildError || !strings.Contains(b.Reason, "FROM web: no template has that name") {
		t.Fatalf("team B built FROM team A's template: %+v", b)
	}
	if _, err := db.FindTemplate(ctx, beta.ID, "thief"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a failed first build left a template: %v", err)
	}

	// Team B's own web, and a template FROM it.
	bID, b := build(beta.ID, "web", testDockerfile, "team-b")
	if b.Status != controlplane.BuildReady || bID == aID {
		t.Fatalf("team B's web: %s %+v", bID, b)
	}
	_, b = build(beta.ID, "child", "FROM web\nENV CHILD=1\n", "b")
	if b.Status != controlplane.BuildReady {
		t.Fatalf("team B's FROM its own web: %+v", b)
	}
	child, err := svc.GetTemplate(ctx, beta.ID, "child")
	if err != nil || child.Template.TeamID != beta.ID || child.Template.Name != "child" {
		t.Fatalf("team B's child: %+v, %v", child, err)
	}
	d, err := n.TemplateDetails(ctx, child.Template.ID, "")
	if err != nil || d.Env["CHILD"] != "1" || d.Env["GREETING"] != "hello" {
		t.Fatalf("child's details %+v, %v: it should be built on team B's web", d, err)
	}
	for team, want := range map[string]string{store.DefaultTeamID: "team-a", beta.ID: "team-b"} {
		info, err := svc.GetTemplate(ctx, team, "web")
		if err != nil {
			t.Fatal(err)
		}
		d, err := n.TemplateDetails(ctx, info.Template.ID, "")
		if err != nil || !strings.Contains(readFile(t, d.Rootfs+"/app/run.sh"), want) {
			t.Errorf("web of team %s is not its own build (%v)", team, err)
		}
	}
	if now, err := db.GetTemplate(ctx, "web"); err != nil || now.BuildID != aWeb.BuildID {
		t.Errorf("team B's builds changed team A's web: %+v, %v", now, err)
	}
}

// readFile returns a file's contents, or "" when it cannot be read.
func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return string(b)
}
