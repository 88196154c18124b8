package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"testing"
	"time"
)

// intp returns a pointer to n.
func intp(n int) *int { return &n }

// mustTeam inserts a team with this slug (its ID "team-<slug>") and quotas.
func mustTeam(tb testing.TB, db *DB, slug string, q QuotaSettings) *Team {
	tb.Helper()
	t := &Team{ID: "team-" + slug, Slug: slug, Name: "Team " + slug, Quotas: q}
	if err := db.InsertTeam(context.Background(), t); err != nil {
		tb.Fatalf("InsertTeam(%s): %v", slug, err)
	}
	return t
}

func TestTeams(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	fixedClock(db, base())
	acme := mustTeam(t, db, "acme", QuotaSettings{MaxSandboxes: intp(3), MaxBuilds: intp(0)})
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
		{"duplicate slug", db.InsertTeam(ctx, &Team{ID: "other", Slug: "acme"}), ErrExists},
		{"duplicate ID", db.InsertTeam(ctx, &Team{ID: acme.ID, Slug: "acme2"}), ErrExists},
		{"empty slug", db.InsertTeam(ctx, &Team{ID: "x", Slug: ""}), ErrInvalid},
		{"slug with a slash", db.InsertTeam(ctx, &Team{ID: "x", Slug: "a/b"}), ErrInvalid},
		{"upper-case slug", db.InsertTeam(ctx, &Team{ID: "x", Slug: "Acme"}), ErrInvalid},
		{"empty ID", db.InsertTeam(ctx, &Team{Slug: "x"}), ErrInvalid},
		{"negative quota", db.InsertTeam(ctx, &Team{ID: "x", Slug: "x", Quotas: QuotaSettings{MaxVCPU: intp(-1)}}), ErrInvalid},
		{"nil team", db.InsertTeam(ctx, nil), ErrInvalid},
		{"unknown ID", func() error { _, err := db.GetTeam(ctx, "nope"); return err }(), ErrNotFound},
		{"unknown slug", func() error { _, err := db.TeamBySlug(ctx, "nope"); return err }(), ErrNotFound},
		{"update unknown", db.UpdateTeam(ctx, &Team{ID: "nope"}), ErrNotFound},
		{"update negative", db.UpdateTeam(ctx, &Team{ID: acme.ID, Quotas: QuotaSettings{MaxBuilds: intp(-2)}}), ErrInvalid},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) { wantErr(t, tt.name, tt.err, tt.want) })
	}

	acme.Name = "ACME Corp"
	acme.Quotas = QuotaSettings{MaxVCPU: intp(8)}
	if err := db.UpdateTeam(ctx, acme); err != nil {
		t.Fatal(err)
	}
	list, err := db.ListTeams(ctx)
	if err != nil || len(list) != 2 || list[0].Slug != "acme" || list[1].Slug != DefaultTeamSlug {
		t.Fatalf("ListTeams = %+v, %v", list, err)
	}
	if !reflect.DeepEqual(list[0], acme) {
		t.Fatalf("after update = %+v, want %+v", list[0], acme)
	}
}

func TestQuotaSettingsResolve(t *testing.T) {
	defaults := Quotas{MaxSandboxes: 10, MaxVCPU: 20, MaxMemoryMB: 4096, MaxBuilds: 2}
	tests := []struct {
		name string
		q    QuotaSettings
		want Quotas
	}{
		{"none set", QuotaSettings{}, defaults},
		{"zero means unlimited, not default", QuotaSettings{MaxSandboxes: intp(0), MaxBuilds: intp(0)},
			Quotas{MaxSandboxes: 0, MaxVCPU: 20, MaxMemoryMB: 4096, MaxBuilds: 0}},
		{"all set", QuotaSettings{intp(1), intp(2), intp(3), intp(4)}, Quotas{1, 2, 3, 4}},
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
func sized(id, team, state string, cpu, mem int) *Sandbox {
	s := newSandbox(id)
	s.TeamID, s.State, s.CPUCount, s.MemoryMB = team, state, cpu, mem
	return s
}

func TestSandboxQuotas(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		quotas   QuotaSettings
		defaults Quotas
		existing []*Sandbox // of team acme unless they say otherwise
		add      *Sandbox
		want     string // the quota refused, "" when admitted
	}{
		{"under every quota", QuotaSettings{MaxSandboxes: intp(2), MaxVCPU: intp(4), MaxMemoryMB: intp(1024)}, Quotas{},
			[]*Sandbox{sized("a", "team-acme", StateRunning, 2, 512)}, sized("new", "team-acme", StateStarting, 2, 512), ""},
		{"at max-sandboxes", QuotaSettings{MaxSandboxes: intp(1)}, Quotas{},
			[]*Sandbox{sized("a", "team-acme", StateRunning, 1, 128)}, sized("new", "team-acme", StateStarting, 1, 128), QuotaSandboxes},
		{"paused and dead ones do not count", QuotaSettings{MaxSandboxes: intp(1)}, Quotas{},
			[]*Sandbox{sized("a", "team-acme", StatePaused, 1, 128), sized("b", "team-acme", StateDead, 1, 128),
				sized("c", "team-acme", StateKilled, 1, 128)}, sized("new", "team-acme", StateStarting, 1, 128), ""},
		{"pausing and resuming ones count", QuotaSettings{MaxSandboxes: intp(2)}, Quotas{},
			[]*Sandbox{sized("a", "team-acme", StatePausing, 1, 128), sized("b", "team-acme", StateResuming, 1, 128)},
			sized("new", "team-acme", StateStarting, 1, 128), QuotaSandboxes},
		{"other teams do not count", QuotaSettings{MaxSandboxes: intp(1)}, Quotas{},
			[]*Sandbox{sized("a", DefaultTeamID, StateRunning, 1, 128)}, sized("new", "team-acme", StateStarting, 1, 128), ""},
		{"over max-vcpu", QuotaSettings{MaxVCPU: intp(4)}, Quotas{},
			[]*Sandbox{sized("a", "team-acme", StateRunning, 3, 128)}, sized("new", "team-acme", StateStarting, 2, 128), QuotaVCPU},
		{"exactly max-vcpu", QuotaSettings{MaxVCPU: intp(4)}, Quotas{},
			[]*Sandbox{sized("a", "team-acme", StateRunning, 2, 128)}, sized("new", "team-acme", StateStarting, 2, 128), ""},
		{"over max-memory-mb", QuotaSettings{MaxMemoryMB: intp(1024)}, Quotas{},
			[]*Sandbox{sized("a", "team-acme", StateRunning, 1, 768)}, sized("new", "team-acme", StateStarting, 1, 512), QuotaMemoryMB},
		{"one sandbox bigger than the quota", QuotaSettings{MaxMemoryMB: intp(256)}, Quotas{},
			nil, sized("new", "team-acme", StateStarting, 1, 512), QuotaMemoryMB},
		{"the server default applies", QuotaSettings{}, Quotas{MaxSandboxes: 1},
			[]*Sandbox{sized("a", "team-acme", StateRunning, 1, 128)}, sized("new", "team-acme", StateStarting, 1, 128), QuotaSandboxes},
		{"the team's 0 overrides the default", QuotaSettings{MaxSandboxes: intp(0)}, Quotas{MaxSandboxes: 1},
			[]*Sandbox{sized("a", "team-acme", StateRunning, 1, 128)}, sized("new", "team-acme", StateStarting, 1, 128), ""},
		{"a paused insert is not checked", QuotaSettings{MaxSandboxes: intp(1)}, Quotas{},
			[]*Sandbox{sized("a", "team-acme", StateRunning, 1, 128)}, sized("new", "team-acme", StatePaused, 1, 128), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openTestDB(t)
			mustTeam(t, db, "acme", tt.quotas)
			mustInsert(t, db, tt.existing...)
			err := db.InsertSandboxWithin(ctx, tt.add, tt.defaults)
			var qe *QuotaError
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (!errors.As(err, &qe) || !errors.Is(err, ErrQuota) || qe.Quota != tt.want || qe.TeamSlug != "acme"):
				t.Fatalf("error %v, want a quota error on %s", err, tt.want)
			case tt.want != "":
				if n := countRows(t, db, "sandboxes", "id = 'new'"); n != 0 {
					t.Fatal("the refused sandbox was stored")
				}
			}
		})
	}
}

func TestResumeQuota(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	mustTeam(t, db, "acme", QuotaSettings{MaxSandboxes: intp(1)})
	running, paused := sized("run", "team-acme", StateRunning, 1, 128), sized("psd", "team-acme", StatePaused, 1, 128)
	mustInsert(t, db, running, paused)
	paused.State = StateResuming
	err := db.UpdateSandboxWithin(ctx, paused, Quotas{})
	if !errors.Is(err, ErrQuota) || paused.Version != 1 {
		t.Fatalf("resume over the quota: %v (version %d)", err, paused.Version)
	}
	if got, _ := db.GetSandbox(ctx, "psd"); got.State != StatePaused {
		t.Fatalf("a refused resume changed the state to %s", got.State)
	}
	// The sandbox itself is not counted: updating a running one is fine.
	running.EndAt = running.EndAt.Add(time.Minute)
	if err := db.UpdateSandboxWithin(ctx, running, Quotas{}); err != nil {
		t.Fatalf("update of the running sandbox: %v", err)
	}
	running.State = StatePaused
	if err := db.UpdateSandbox(ctx, running); err != nil {
		t.Fatal(err)
	}
	if err := db.UpdateSandboxWithin(ctx, paused, Quotas{}); err != nil {
		t.Fatalf("resume with a free slot: %v", err)
	}
	// Stale versions and unknown sandboxes are reported as before.
	stale := *paused
	stale.Version = 1
	wantErr(t, "stale", db.UpdateSandboxWithin(ctx, &stale, Quotas{}), ErrConflict)
	wantErr(t, "unknown", db.UpdateSandboxWithin(ctx, sized("nope", "team-acme", StateResuming, 1, 1), Quotas{}), ErrNotFound)
	wantErr(t, "unknown team", db.InsertSandboxWithin(ctx, sized("x", "no-team", StateStarting, 1, 1), Quotas{}), ErrNotFound)
}

// TestQuotaRace: many creates race for the last slot of a team, through two
// handles on one file as two processes would; exactly one gets it.
func TestQuotaRace(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "race.db")
	var dbs [2]*DB
	for i := range dbs {
		db, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		dbs[i] = db
	}
	mustTeam(t, dbs[0], "acme", QuotaSettings{MaxSandboxes: intp(3), MaxBuilds: intp(2)})
	mustInsert(t, dbs[0], sized("a", "team-acme", StateRunning, 1, 128), sized("b", "team-acme", StateRunning, 1, 128))
	var won, refused atomic.Int64
	runConcurrently(t, 24, func(i int) error {
		err := dbs[i%2].InsertSandboxWithin(ctx, sized(fmt.Sprintf("r%02d", i), "team-acme", StateStarting, 1, 128), Quotas{})
		switch {
		case err == nil:
			won.Add(1)
		case errors.Is(err, ErrQuota):
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
		err := dbs[i%2].InsertTemplateBuild(ctx, &TemplateBuild{ID: fmt.Sprintf("build-%02d", i), TeamID: "team-acme",
			TemplateID: "web", Name: "web"}, Quotas{})
		if err == nil {
			won.Add(1)
		} else if !errors.Is(err, ErrQuota) {
			return err
		}
		return nil
	})
	if won.Load() != 2 {
		t.Fatalf("%d builds started, want 2 (max-builds)", won.Load())
	}
}

func TestTemplateBuilds(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	fixedClock(db, base())
	mustTeam(t, db, "acme", QuotaSettings{MaxBuilds: intp(1)})
	b := &TemplateBuild{ID: "b1", TeamID: "team-acme", TemplateID: "acme-web", Name: "web"}
	if err := db.InsertTemplateBuild(ctx, b, Quotas{}); err != nil {
		t.Fatal(err)
	}
	if b.Status != BuildRunning || !b.StartedAt.Equal(base()) {
		t.Fatalf("after insert: %+v", b)
	}
	if got, err := db.GetTemplateBuild(ctx, "b1"); err != nil || !reflect.DeepEqual(got, b) {
		t.Fatalf("GetTemplateBuild = %+v, %v; want %+v", got, err, b)
	}
	second := &TemplateBuild{ID: "b2", TeamID: "team-acme", TemplateID: "acme-web", Name: "web"}
	var qe *QuotaError
	if err := db.InsertTemplateBuild(ctx, second, Quotas{}); !errors.As(err, &qe) || qe.Quota != QuotaBuilds || qe.Limit != 1 {
		t.Fatalf("a second build: %v, want the max-builds quota", err)
	}
	// Another team's builds are counted apart.
	if err := db.InsertTemplateBuild(ctx, &TemplateBuild{ID: "d1", TeamID: DefaultTeamID, TemplateID: "web", Name: "web"},
		Quotas{MaxBuilds: 1}); err != nil {
		t.Fatalf("the default team's build: %v", err)
	}
	if list, err := db.ListRunningBuilds(ctx, "team-acme"); err != nil || len(list) != 1 || list[0].ID != "b1" {
		t.Fatalf("running builds of acme = %+v, %v", list, err)
	}
	if list, err := db.ListRunningBuilds(ctx, ""); err != nil || len(list) != 2 {
		t.Fatalf("running builds = %+v, %v", list, err)
	}
	if err := db.FinishTemplateBuild(ctx, "b1", BuildFailed, base().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	// The first end is kept.
	if err := db.FinishTemplateBuild(ctx, "b1", BuildFinished, base().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	got, err := db.GetTemplateBuild(ctx, "b1")
	if err != nil || got.Status != BuildFailed || got.FinishedAt == nil || !got.FinishedAt.Equal(base().Add(time.Minute)) {
		t.Fatalf("after finish = %+v, %v", got, err)
	}
	if err := db.InsertTemplateBuild(ctx, second, Quotas{}); err != nil {
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
		{"duplicate", db.InsertTemplateBuild(ctx, &TemplateBuild{ID: "b1", TeamID: "team-acme", TemplateID: "x"}, Quotas{}), ErrExists},
		{"no team", db.InsertTemplateBuild(ctx, &TemplateBuild{ID: "b9", TemplateID: "x"}, Quotas{}), ErrInvalid},
		{"unknown team", db.InsertTemplateBuild(ctx, &TemplateBuild{ID: "b9", TeamID: "nope", TemplateID: "x"}, Quotas{}), ErrNotFound},
		{"get deleted", func() error { _, err := db.GetTemplateBuild(ctx, "b2"); return err }(), ErrNotFound},
		{"finish unknown", db.FinishTemplateBuild(ctx, "nope", BuildFailed, base()), ErrNotFound},
		{"finish as running", db.FinishTemplateBuild(ctx, "b1", BuildRunning, base()), ErrInvalid},
		{"delete unknown", db.DeleteTemplateBuild(ctx, "nope"), ErrNotFound},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) { wantErr(t, tt.name, tt.err, tt.want) })
	}
}
