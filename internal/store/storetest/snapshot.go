package storetest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/store"
)

// snap is a snapshot of team DefaultTeamID taken at base()+minutes.
func snap(id, sandbox, tag string, minutes int) *store.Snapshot {
	return &store.Snapshot{ID: id, TeamID: store.DefaultTeamID, Tag: tag, SandboxID: sandbox, BaseTemplateID: "base",
		NodeID: "local", RuntimeClass: store.RuntimeGVisor, SizeBytes: 1 << 20,
		CreatedAt: base().Add(time.Duration(minutes) * time.Minute)}
}

// snapTemplate is the template record PutSnapshot is given for a snapshot.
func snapTemplate(id, name string) *store.Template {
	return &store.Template{ID: id, Name: name, RootfsPath: "/t/base", CPUCount: 2, MemoryMB: 512, DiskSizeMB: 1024, EnvdVersion: "0.6.4"}
}

// testPutSnapshot: the first build makes a private, ready template of the team; later
// builds become its current build; names and IDs of others are refused.
func testPutSnapshot(t *testing.T, e *env) {
	db := e.open(t)
	ctx := context.Background()
	other := &store.Team{ID: "team-b", Slug: "b", Name: "B"}
	if err := db.InsertTeam(ctx, other); err != nil {
		t.Fatal(err)
	}
	if err := db.PutTemplate(ctx, &store.Template{ID: "py", Aliases: []string{"python"}}); err != nil {
		t.Fatal(err)
	}
	tpl := snapTemplate("tsnap", "my-snap")
	if err := db.PutSnapshot(ctx, tpl, snap("s1", "sbx1", "default", 0)); err != nil {
		t.Fatalf("first build: %v", err)
	}
	if tpl.TeamID != store.DefaultTeamID || tpl.Name != "my-snap" || tpl.BuildID != "s1" || tpl.Public ||
		tpl.Status != store.TemplateReady || tpl.RootfsPath != "/t/base" || tpl.MemoryMB != 512 {
		t.Fatalf("stored template %+v", tpl)
	}
	kept := snap("s2", "sbx2", "v2", 1)
	kept.KeptImage = "sha256:" + strings.Repeat("cd", 32)
	if err := db.PutSnapshot(ctx, snapTemplate("tsnap", ""), kept); err != nil {
		t.Fatalf("second build: %v", err)
	}
	if got, _ := db.GetTemplate(ctx, "tsnap"); got.BuildID != "s2" || got.Name != "my-snap" {
		t.Errorf("after the second build: %+v", got)
	}
	if err := db.PutSnapshot(ctx, snapTemplate("tunnamed", ""), snap("s3", "sbx1", "default", 2)); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.GetTemplate(ctx, "tunnamed"); got.Name != "tunnamed" {
		t.Errorf("an unnamed snapshot's template is named %q, want its ID", got.Name)
	}

	tests := []struct {
		name string
		tpl  *store.Template
		s    *store.Snapshot
		want error
	}{
		{"another template's name", snapTemplate("tnew", "my-snap"), snap("s4", "sbx1", "default", 3), store.ErrExists},
		{"another template's alias", snapTemplate("tnew", "python"), snap("s4", "sbx1", "default", 3), store.ErrExists},
		{"another team's template", snapTemplate("tsnap", ""), &store.Snapshot{ID: "s4", TeamID: "team-b", Tag: "default"}, store.ErrExists},
		{"same snapshot ID", snapTemplate("tsnap", ""), snap("s1", "sbx1", "default", 3), store.ErrExists},
		{"unknown team", snapTemplate("tnew", ""), &store.Snapshot{ID: "s4", TeamID: "nosuch", Tag: "default"}, store.ErrNotFound},
		{"no ID", snapTemplate("tnew", ""), snap("", "sbx1", "default", 3), store.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, "put snapshot", db.PutSnapshot(ctx, tt.tpl, tt.s), tt.want)
			n := 0
			for _, id := range []string{"tsnap", "tunnamed", "tnew"} {
				builds, err := db.TemplateSnapshots(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				n += len(builds)
			}
			if n != 3 {
				t.Errorf("%d snapshots after a refused put, want 3", n)
			}
			if _, err := db.GetTemplate(ctx, "tnew"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("a refused put left template tnew: %v", err)
			}
		})
	}

	builds, err := db.TemplateSnapshots(ctx, "tsnap")
	if err != nil || len(builds) != 2 || builds[0].ID != "s2" || builds[1].ID != "s1" || builds[0].Tag != "v2" ||
		builds[0].KeptImage != kept.KeptImage || builds[1].KeptImage != "" {
		t.Fatalf("builds of tsnap: %+v, %v", builds, err)
	}
	if got, err := db.TemplateSnapshots(ctx, "py"); err != nil || len(got) != 0 {
		t.Errorf("builds of a template that is no snapshot: %+v, %v", got, err)
	}
	// Deleting the template removes its builds.
	if err := db.DeleteTemplate(ctx, "tsnap"); err != nil {
		t.Fatal(err)
	}
	if builds, err := db.TemplateSnapshots(ctx, "tsnap"); err != nil || len(builds) != 0 {
		t.Errorf("builds left after the template was deleted: %+v, %v", builds, err)
	}
}

// testListSnapshots: one entry per template, its newest build among those the
// filter keeps, newest first, in pages; other teams' never.
func testListSnapshots(t *testing.T, e *env) {
	db := e.open(t)
	ctx := context.Background()
	if err := db.InsertTeam(ctx, &store.Team{ID: "team-b", Slug: "b", Name: "B"}); err != nil {
		t.Fatal(err)
	}
	puts := []struct {
		tpl string
		s   *store.Snapshot
	}{
		{"ta", snap("a1", "sbx1", "default", 0)},
		{"tb", snap("b1", "sbx2", "default", 1)},
		{"ta", snap("a2", "sbx2", "v2", 2)},
		{"tc", snap("c1", "sbx1", "default", 3)},
		{"td", snap("d1", "sbx1", "default", 4)},
	}
	for _, p := range puts {
		if err := db.PutSnapshot(ctx, snapTemplate(p.tpl, ""), p.s); err != nil {
			t.Fatal(err)
		}
	}
	foreign := snap("x1", "sbx1", "default", 5)
	foreign.TeamID = "team-b"
	if err := db.PutSnapshot(ctx, snapTemplate("tx", ""), foreign); err != nil {
		t.Fatal(err)
	}
	ids := func(ss []*store.Snapshot) []string {
		out := []string{}
		for _, s := range ss {
			out = append(out, s.ID)
		}
		return out
	}
	tests := []struct {
		name string
		f    store.SnapshotFilter
		want []string
	}{
		{"all", store.SnapshotFilter{TeamID: store.DefaultTeamID}, []string{"d1", "c1", "a2", "b1"}},
		{"of a sandbox", store.SnapshotFilter{TeamID: store.DefaultTeamID, SandboxID: "sbx1"}, []string{"d1", "c1", "a1"}},
		{"of a template", store.SnapshotFilter{TeamID: store.DefaultTeamID, TemplateID: "ta"}, []string{"a2"}},
		{"of a template and tag", store.SnapshotFilter{TeamID: store.DefaultTeamID, TemplateID: "ta", Tag: "default"}, []string{"a1"}},
		{"unknown template", store.SnapshotFilter{TeamID: store.DefaultTeamID, TemplateID: "nosuch"}, []string{}},
		{"other team", store.SnapshotFilter{TeamID: "team-b"}, []string{"x1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, next, err := db.ListSnapshots(ctx, tt.f)
			if err != nil || next != "" {
				t.Fatalf("list: %v, next %q", err, next)
			}
			if g := ids(got); !equalStrings(g, tt.want) {
				t.Fatalf("got %v, want %v", g, tt.want)
			}
		})
	}
	t.Run("pages", func(t *testing.T) {
		var all []string
		f := store.SnapshotFilter{TeamID: store.DefaultTeamID, Limit: 1}
		for pages := 0; ; pages++ {
			if pages > 10 {
				t.Fatal("the listing does not end")
			}
			got, next, err := db.ListSnapshots(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, ids(got)...)
			if next == "" {
				break
			}
			f.Cursor = next
		}
		if want := []string{"d1", "c1", "a2", "b1"}; !equalStrings(all, want) {
			t.Errorf("pages give %v, want %v", all, want)
		}
	})
	for _, bad := range []store.SnapshotFilter{{}, {TeamID: store.DefaultTeamID, Cursor: "!!"}, {TeamID: store.DefaultTeamID, Limit: -1}} {
		if _, _, err := db.ListSnapshots(ctx, bad); err == nil {
			t.Errorf("list %+v: no error", bad)
		}
	}
	if _, _, err := db.ListSnapshots(ctx, store.SnapshotFilter{TeamID: store.DefaultTeamID, Cursor: "!!"}); !errors.Is(err, store.ErrInvalidCursor) {
		t.Errorf("bad cursor: %v, want ErrInvalidCursor", err)
	}
}

// defaultLifecycle is the lifecycle of a sandbox that has none stored.
var defaultLifecycle = store.SandboxLifecycle{AutoPauseMemory: true, PausedMemory: true}

// testSandboxLifecycle: stored, replaced, defaults without a row, gone with the
// sandbox.
func testSandboxLifecycle(t *testing.T, e *env) {
	db := e.open(t)
	ctx := context.Background()
	mustInsert(t, db, newSandbox("sbx1"))
	if got, err := db.SandboxLifecycleOf(ctx, "sbx1"); err != nil || got != defaultLifecycle {
		t.Fatalf("without a row: %+v, %v", got, err)
	}
	for _, l := range []store.SandboxLifecycle{
		{AutoPauseMemory: false, Timeout: 3 * time.Second, PausedMemory: true},
		{AutoPauseMemory: true, Timeout: time.Hour, PausedMemory: false},
		{AutoPauseMemory: true, Timeout: time.Hour, PausedMemory: true, KeptImage: "sha256:" + strings.Repeat("ab", 32)},
	} {
		if err := db.PutSandboxLifecycle(ctx, "sbx1", l); err != nil {
			t.Fatal(err)
		}
		if got, err := db.SandboxLifecycleOf(ctx, "sbx1"); err != nil || got != l {
			t.Fatalf("got %+v, %v; want %+v", got, err, l)
		}
	}
	wantErr(t, "unknown sandbox", db.PutSandboxLifecycle(ctx, "nosuch", store.SandboxLifecycle{}), store.ErrNotFound)
	wantErr(t, "negative timeout", db.PutSandboxLifecycle(ctx, "sbx1", store.SandboxLifecycle{Timeout: -1}), store.ErrInvalid)
	if err := db.DeleteSandbox(ctx, "sbx1"); err != nil {
		t.Fatal(err)
	}
	mustInsert(t, db, newSandbox("sbx1"))
	if got, err := db.SandboxLifecycleOf(ctx, "sbx1"); err != nil || got != defaultLifecycle {
		t.Errorf("a sandbox made again under the ID has the old one's lifecycle: %+v, %v", got, err)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
