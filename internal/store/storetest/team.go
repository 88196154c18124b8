package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/store"
)

// intp returns a pointer to n.
func intp(n int) *int { return &n }

// mustTeam inserts a team with this slug (its ID "team-<slug>") and quotas.
func mustTeam(tb testing.TB, db *store.DB, slug string, q store.QuotaSettings) *store.Team {
	tb.Helper()
	t := &store.Team{ID: "team-" + slug, Slug: slug, Name: "Team " + slug, Quotas: q}
	if err := db.InsertTeam(context.Background(), t); err != nil {
		tb.Fatalf("InsertTeam(%s): %v", slug, err)
	}
	return t
}

func testTeams(t *testing.T, e *env) {
	ctx := context.Background()
	db := e.open(t)
	e.setClock(db, base())
	acme := mustTeam(t, db, "acme", store.QuotaSettings{MaxSandboxes: intp(3), MaxBuilds: intp(0)})
	if !acme.CreatedAt.Equal(base()) {
		t.Fatalf("CreatedAt = %v", acme.CreatedAt)
	}
	got, err := db.GetTeam(ctx, acme.ID)
	if err != nil || !reflect.DeepEqual(got, acme) {
		t.Fatalf("GetTeam = %+v, %v; want %+v", got, err, acme)
	}
	if got, err := db.TeamBySlug(ctx, "acme"); err != nil || got.ID != acme.ID {
		t.Fatalf("TeamBySlug = %+v, %v", got, err)
	}
	errTests := []struct {
		name string
		err  error
		want error
	}{
		{"duplicate slug", db.InsertTeam(ctx, &store.Team{ID: "other", Slug: "acme"}), store.ErrExists},
		{"duplicate ID", db.InsertTeam(ctx, &store.Team{ID: acme.ID, Slug: "acme2"}), store.ErrExists},
		{"empty slug", db.InsertTeam(ctx, &store.Team{ID: "x", Slug: ""}), store.ErrInvalid},
		{"slug with a slash", db.InsertTeam(ctx, &store.Team{ID: "x", Slug: "a/b"}), store.ErrInvalid},
		{"upper-case slug", db.InsertTeam(ctx, &store.Team{ID: "x", Slug: "Acme"}), store.ErrInvalid},
		{"empty ID", db.InsertTeam(ctx, &store.Team{Slug: "x"}), store.ErrInvalid},
		{"negative quota", db.InsertTeam(ctx, &store.Team{ID: "x", Slug: "x", Quotas: store.QuotaSettings{MaxVCPU: intp(-1)}}), store.ErrInvalid},
		{"nil team", db.InsertTeam(ctx, nil), store.ErrInvalid},
		{"unknown ID", func() error { _, err := db.GetTeam(ctx, "nope"); return err }(), store.ErrNotFound},
		{"unknown slug", func() error { _, err := db.TeamBySlug(ctx, "nope"); return err }(), store.ErrNotFound},
		{"update unknown", db.UpdateTeam(ctx, &store.Team{ID: "nope"}), store.ErrNotFound},
		{"update negative", db.UpdateTeam(ctx, &store.Team{ID: acme.ID, Quotas: store.QuotaSettings{MaxBuilds: intp(-2)}}), store.ErrInvalid},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) { wantErr(t, tt.name, tt.err, tt.want) })
	}

	acme.Name = "ACME Corp"
	acme.Quotas = store.QuotaSettings{MaxVCPU: intp(8)}
	if err := db.UpdateTeam(ctx, acme); err != nil {
		t.Fatal(err)
	}
	list, err := db.ListTeams(ctx)
	if err != nil || len(list) != 2 || list[0].Slug != "acme" || list[1].Slug != store.DefaultTeamSlug {
		t.Fatalf("ListTeams = %+v, %v", list, err)
	}
	if !reflect.DeepEqual(list[0], acme) {
		t.Fatalf("after update = %+v, want %+v", list[0], acme)
	}
}

func testQuotaSettingsResolve(t *testing.T, e *env) {
	defaults := store.Quotas{MaxSandboxes: 10, MaxVCPU: 20, MaxMemoryMB: 4096, MaxBuilds: 2}
	tests := []struct {
		name string
		q    store.QuotaSettings
		want store.Quotas
	}{
		{"none set", store.QuotaSettings{}, defaults},
		{"zero means unlimited, not default", store.QuotaSettings{MaxSandboxes: intp(0), MaxBuilds: intp(0)},
			store.Quotas{MaxSandboxes: 0, MaxVCPU: 20, MaxMemoryMB: 4096, MaxBuilds: 0}},
		{"all set", store.QuotaSettings{MaxSandboxes: intp(1), MaxVCPU: intp(2), MaxMemoryMB: intp(3), MaxBuilds: intp(4)},
			store.Quotas{MaxSandboxes: 1, MaxVCPU: 2, MaxMemoryMB: 3, MaxBuilds: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.q.Resolve(defaults); got != tt.want {
				t.Fatalf("Resolve = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// sized returns a sandbox of team in state with cpu CPUs and mem MB.
func sized(id, team, state string, cpu, mem int) *store.Sandbox {
	s := newSandbox(id)
	s.TeamID, s.State, s.CPUCount, s.MemoryMB = team, state, cpu, mem
	return s
}

func testSandboxQuotas(t *testing.T, e *env) {
	ctx := context.Background()
	tests := []struct {
		name     string
		quotas   store.QuotaSettings
		defaults store.Quotas
		existing []*store.Sandbox // of team acme unless they say otherwise
		add      *store.Sandbox
		want     string // the quota refused, "" when admitted
	}{
		{"under every quota", store.QuotaSettings{MaxSandboxes: intp(2), MaxVCPU: intp(4), MaxMemoryMB: intp(1024)}, store.Quotas{},
			[]*store.Sandbox{sized("a", "team-acme", store.StateRunning, 2, 512)}, sized("new", "team-acme", store.StateStarting, 2, 512), ""},
		{"at max-sandboxes", store.QuotaSettings{MaxSandboxes: intp(1)}, store.Quotas{},
			[]*store.Sandbox{sized("a", "team-acme", store.StateRunning, 1, 128)}, sized("new", "team-acme", store.StateStarting, 1, 128), store.QuotaSandboxes},
		{"paused and dead ones do not count", store.QuotaSettings{MaxSandboxes: intp(1)}, store.Quotas{},
			[]*store.Sandbox{sized("a", "team-acme", store.StatePaused, 1, 128), sized("b", "team-acme", store.StateDead, 1, 128),
				sized("c", "team-acme", store.StateKilled, 1, 128)}, sized("new", "team-acme", store.StateStarting, 1, 128), ""},
		{"pausing and resuming ones count", store.QuotaSettings{MaxSandboxes: intp(2)}, store.Quotas{},
			[]*store.Sandbox{sized("a", "team-acme", store.StatePausing, 1, 128), sized("b", "team-acme", store.StateResuming, 1, 128)},
			sized("new", "team-acme", store.StateStarting, 1, 128), store.QuotaSandboxes},
		{"other teams do not count", store.QuotaSettings{MaxSandboxes: intp(1)}, store.Quotas{},
			[]*store.Sandbox{sized("a", store.DefaultTeamID, store.StateRunning, 1, 128)}, sized("new", "team-acme", store.StateStarting, 1, 128), ""},
		{"over max-vcpu", store.QuotaSettings{MaxVCPU: intp(4)}, store.Quotas{},
			[]*store.Sandbox{sized("a", "team-acme", store.StateRunning, 3, 128)}, sized("new", "team-acme", store.StateStarting, 2, 128), store.QuotaVCPU},
		{"exactly max-vcpu", store.QuotaSettings{MaxVCPU: intp(4)}, store.Quotas{},
			[]*store.Sandbox{sized("a", "team-acme", store.StateRunning, 2, 128)}, sized("new", "team-acme", store.StateStarting, 2, 128), ""},
		{"over max-memory-mb", store.QuotaSettings{MaxMemoryMB: intp(1024)}, store.Quotas{},
			[]*store.Sandbox{sized("a", "team-acme", store.StateRunning, 1, 768)}, sized("new", "team-acme", store.StateStarting, 1, 512), store.QuotaMemoryMB},
		{"one sandbox bigger than the quota", store.QuotaSettings{MaxMemoryMB: intp(256)}, store.Quotas{},
			nil, sized("new", "team-acme", store.StateStarting, 1, 512), store.QuotaMemoryMB},
		{"the server default applies", store.QuotaSettings{}, store.Quotas{MaxSandboxes: 1},
			[]*store.Sandbox{sized("a", "team-acme", store.StateRunning, 1, 128)}, sized("new", "team-acme", store.StateStarting, 1, 128), store.QuotaSandboxes},
		{"the team's 0 overrides the default", store.QuotaSettings{MaxSandboxes: intp(0)}, store.Quotas{MaxSandboxes: 1},
			[]*store.Sandbox{sized("a", "team-acme", store.StateRunning, 1, 128)}, sized("new", "team-acme", store.StateStarting, 1, 128), ""},
		{"a paused insert is not checked", store.QuotaSettings{MaxSandboxes: intp(1)}, store.Quotas{},
			[]*store.Sandbox{sized("a", "team-acme", store.StateRunning, 1, 128)}, sized("new", "team-acme", store.StatePaused, 1, 128), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := e.open(t)
			mustTeam(t, db, "acme", tt.quotas)
			mustInsert(t, db, tt.existing...)
			err := db.InsertSandboxWithin(ctx, tt.add, tt.defaults)
			var qe *store.QuotaError
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (!errors.As(err, &qe) || !errors.Is(err, store.ErrQuota) || qe.Quota != tt.want || qe.TeamSlug != "acme"):
				t.Fatalf("error %v, want a quota error on %s", err, tt.want)
			case tt.want != "":
				absent(t, db, "new")
			}
		})
	}
}

func testResumeQuota(t *testing.T, e *env) {
	ctx := context.Background()
	db := e.open(t)
	mustTeam(t, db, "acme", store.QuotaSettings{MaxSandboxes: intp(1)})
	running, paused := sized("run", "team-acme", store.StateRunning, 1, 128), sized("psd", "team-acme", store.StatePaused, 1, 128)
	mustInsert(t, db, running, paused)
	paused.State = store.StateResuming
	err := db.UpdateSandboxWithin(ctx, paused, store.Quotas{})
	if !errors.Is(err, store.ErrQuota) || paused.Version != 1 {
		t.Fatalf("resume over the quota: %v (version %d)", err, paused.Version)
	}
	if got, _ := db.GetSandbox(ctx, "psd"); got.State != store.StatePaused {
		t.Fatalf("a refused resume changed the state to %s", got.State)
	}
	// The sandbox itself is not counted: updating a running one is fine.
	running.EndAt = running.EndAt.Add(time.Minute)
	if err := db.UpdateSandboxWithin(ctx, running, store.Quotas{}); err != nil {
		t.Fatalf("update of the running sandbox: %v", err)
	}
	running.State = store.StatePaused
	if err := db.UpdateSandbox(ctx, running); err != nil {
		t.Fatal(err)
	}
	if err := db.UpdateSandboxWithin(ctx, paused, store.Quotas{}); err != nil {
		t.Fatalf("resume with a free slot: %v", err)
	}
	// Stale versions and unknown sandboxes are reported as before.
	stale := *paused
	stale.Version = 1
	wantErr(t, "stale", db.UpdateSandboxWithin(ctx, &stale, store.Quotas{}), store.ErrConflict)
	wantErr(t, "unknown", db.UpdateSandboxWithin(ctx, sized("nope", "team-acme", store.StateResuming, 1, 1), store.Quotas{}), store.ErrNotFound)
	wantErr(t, "unknown team", db.InsertSandboxWithin(ctx, sized("x", "no-team", store.StateStarting, 1, 1), store.Quotas{}), store.ErrNotFound)
}

// testQuotaRace: many creates race for the last slot of a team, through two
// handles on one database as two processes or replicas would; exactly one
// gets it.
func testQuotaRace(t *testing.T, e *env) {
	ctx := context.Background()
	loc := e.b.NewLocation(t)
	dbs := [2]*store.DB{e.openAt(t, loc), e.openAt(t, loc)}
	mustTeam(t, dbs[0], "acme", store.QuotaSettings{MaxSandboxes: intp(3), MaxBuilds: intp(2)})
	mustInsert(t, dbs[0], sized("a", "team-acme", store.StateRunning, 1, 128), sized("b", "team-acme", store.StateRunning, 1, 128))
	var won, refused atomic.Int64
	runConcurrently(t, 24, func(i int) error {
		err := dbs[i%2].InsertSandboxWithin(ctx, sized(fmt.Sprintf("r%02d", i), "team-acme", store.StateStarting, 1, 128), store.Quotas{})
		switch {
		case err == nil:
			won.Add(1)
		case errors.Is(err, store.ErrQuota):
			refused.Add(1)
		default:
			return err
		}
		return nil
	})
	if won.Load() != 1 || refused.Load() != 23 {
		t.Fatalf("%d creates won the last slot and %d were refused, want 1 and 23", won.Load(), refused.Load())
	}

	won.Store(0)
	runConcurrently(t, 12, func(i int) error {
		err := dbs[i%2].InsertTemplateBuild(ctx, &store.TemplateBuild{ID: fmt.Sprintf("build-%02d", i), TeamID: "team-acme",
			TemplateID: "web", Name: "web"}, store.Quotas{})
		if err == nil {
			won.Add(1)
		} else if !errors.Is(err, store.ErrQuota) {
			return err
		}
		return nil
	})
	if won.Load() != 2 {
		t.Fatalf("%d builds started, want 2 (max-builds)", won.Load())
	}
}

func testTemplateBuilds(t *testing.T, e *env) {
	ctx := context.Background()
	db := e.open(t)
	e.setClock(db, base())
	mustTeam(t, db, "acme", store.QuotaSettings{MaxBuilds: intp(1)})
	b := &store.TemplateBuild{ID: "b1", TeamID: "team-acme", TemplateID: "acme-web", Name: "web"}
	if err := db.InsertTemplateBuild(ctx, b, store.Quotas{}); err != nil {
		t.Fatal(err)
	}
	if b.Status != store.BuildRunning || !b.StartedAt.Equal(base()) {
		t.Fatalf("after insert: %+v", b)
	}
	if got, err := db.GetTemplateBuild(ctx, "b1"); err != nil || !reflect.DeepEqual(got, b) {
		t.Fatalf("GetTemplateBuild = %+v, %v; want %+v", got, err, b)
	}
	second := &store.TemplateBuild{ID: "b2", TeamID: "team-acme", TemplateID: "acme-web", Name: "web"}
	var qe *store.QuotaError
	if err := db.InsertTemplateBuild(ctx, second, store.Quotas{}); !errors.As(err, &qe) || qe.Quota != store.QuotaBuilds || qe.Limit != 1 {
		t.Fatalf("a second build: %v, want the max-builds quota", err)
	}
	// Another team's builds are counted apart.
	if err := db.InsertTemplateBuild(ctx, &store.TemplateBuild{ID: "d1", TeamID: store.DefaultTeamID, TemplateID: "web", Name: "web"},
		store.Quotas{MaxBuilds: 1}); err != nil {
		t.Fatalf("the default team's build: %v", err)
	}
	if list, err := db.ListRunningBuilds(ctx, "team-acme"); err != nil || len(list) != 1 || list[0].ID != "b1" {
		t.Fatalf("running builds of acme = %+v, %v", list, err)
	}
	if list, err := db.ListRunningBuilds(ctx, ""); err != nil || len(list) != 2 {
		t.Fatalf("running builds = %+v, %v", list, err)
	}
	if err := db.FinishTemplateBuild(ctx, "b1", store.BuildFailed, base().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	// The first end is kept.
	if err := db.FinishTemplateBuild(ctx, "b1", store.BuildFinished, base().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	got, err := db.GetTemplateBuild(ctx, "b1")
	if err != nil || got.Status != store.BuildFailed || got.FinishedAt == nil || !got.FinishedAt.Equal(base().Add(time.Minute)) {
		t.Fatalf("after finish = %+v, %v", got, err)
	}
	if err := db.InsertTemplateBuild(ctx, second, store.Quotas{}); err != nil {
		t.Fatalf("a build after the first ended: %v", err)
	}
	if err := db.DeleteTemplateBuild(ctx, "b2"); err != nil {
		t.Fatal(err)
	}
	errTests := []struct {
		name string
		err  error
		want error
	}{
		{"duplicate", db.InsertTemplateBuild(ctx, &store.TemplateBuild{ID: "b1", TeamID: "team-acme", TemplateID: "x"}, store.Quotas{}), store.ErrExists},
		{"no team", db.InsertTemplateBuild(ctx, &store.TemplateBuild{ID: "b9", TemplateID: "x"}, store.Quotas{}), store.ErrInvalid},
		{"unknown team", db.InsertTemplateBuild(ctx, &store.TemplateBuild{ID: "b9", TeamID: "nope", TemplateID: "x"}, store.Quotas{}), store.ErrNotFound},
		{"get deleted", func() error { _, err := db.GetTemplateBuild(ctx, "b2"); return err }(), store.ErrNotFound},
		{"finish unknown", db.FinishTemplateBuild(ctx, "nope", store.BuildFailed, base()), store.ErrNotFound},
		{"finish as running", db.FinishTemplateBuild(ctx, "b1", store.BuildRunning, base()), store.ErrInvalid},
		{"delete unknown", db.DeleteTemplateBuild(ctx, "nope"), store.ErrNotFound},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) { wantErr(t, tt.name, tt.err, tt.want) })
	}
}
