// Package storetest is the store's conformance suite: every behaviour of
// store.DB the control plane relies on (records and their errors, paging
// and cursors, teams and quotas under concurrency, versions and conflicts,
// snapshots, volumes, leases, node heartbeats, the migration of a database an older schema
// made), written once and run against each database the store supports.
// A backend runs it from a test with Run, giving it a way to make empty
// databases; SQLite's and PostgreSQL's tests in package store do.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/store"
)

// Backend is a database the suite runs against.
type Backend struct {
	// NewLocation returns where a new, empty database is (a file path, a
	// URL) for store.Open, gone at the end of the test.
	NewLocation func(tb testing.TB) string
	// Exec runs SQL statements, without placeholders, on the database at
	// location outside the store (the suite writes rows of an older schema
	// with it). The statements are written in the SQL both databases take.
	Exec func(tb testing.TB, location string, stmts ...string)
}

// Run runs the suite against b, one subtest per behaviour.
func Run(t *testing.T, b Backend) {
	e := &env{b: b}
	for _, c := range []struct {
		name string
		fn   func(*testing.T, *env)
	}{
		{"OpenMigratesAndSurvivesReopen", testOpenMigratesAndSurvivesReopen},
		{"OpenRefusesNewerSchema", testOpenRefusesNewerSchema},
		{"OpenAtSchemaVersion", testOpenAtSchemaVersion},
		{"MigrateToTeamsKeepsEverything", testMigrateToTeamsKeepsEverything},
		{"SandboxRoundTrip", testSandboxRoundTrip},
		{"SandboxErrors", testSandboxErrors},
		{"UpdateSandbox", testUpdateSandbox},
		{"DeleteSandboxCascades", testDeleteSandboxCascades},
		{"Text", testText},
		{"ListSandboxesPaging", testListSandboxesPaging},
		{"ListSandboxesReturnsFullRecords", testListSandboxesReturnsFullRecords},
		{"ListSandboxesBadInput", testListSandboxesBadInput},
		{"ListDue", testListDue},
		{"ListScopedByTeam", testListScopedByTeam},
		{"APIKeys", testAPIKeys},
		{"TeamAPIKeys", testTeamAPIKeys},
		{"Teams", testTeams},
		{"QuotaSettingsResolve", testQuotaSettingsResolve},
		{"SandboxQuotas", testSandboxQuotas},
		{"ResumeQuota", testResumeQuota},
		{"QuotaRace", testQuotaRace},
		{"TemplateBuilds", testTemplateBuilds},
		{"Templates", testTemplates},
		{"TemplatesPerTeam", testTemplatesPerTeam},
		{"PutSnapshot", testPutSnapshot},
		{"ListSnapshots", testListSnapshots},
		{"SandboxLifecycle", testSandboxLifecycle},
		{"InsertVolume", testInsertVolume},
		{"SandboxVolumeMounts", testSandboxVolumeMounts},
		{"DeleteVolumeRacesMount", testDeleteVolumeRacesMount},
		{"Metrics", testMetrics},
		{"Events", testEvents},
		{"ConcurrentCompareAndSwap", testConcurrentCompareAndSwap},
		{"ConcurrentMixedCallers", testConcurrentMixedCallers},
		{"ConcurrentHandlesOnOneDatabase", testConcurrentHandlesOnOneDatabase},
		{"Leases", testLeases},
		{"LeaseExpiry", testLeaseExpiry},
		{"LeaseRace", testLeaseRace},
		{"Nodes", testNodes},
		{"NodeStatus", testNodeStatus},
		{"NodeLoads", testNodeLoads},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, e) })
	}
}

// env is what the tests share: the backend and the clocks of the stores
// they opened.
type env struct {
	b      Backend
	clocks sync.Map // *store.DB: *clock
}

// clock is a store's clock: real time until set.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.t.IsZero() {
		return time.Now()
	}
	return c.t
}

// open opens a store on a new, empty database, closed at the end of the
// test.
func (e *env) open(tb testing.TB) *store.DB {
	tb.Helper()
	return e.openAt(tb, e.b.NewLocation(tb))
}

// openAt opens a store on the database at location, closed at the end of
// the test.
func (e *env) openAt(tb testing.TB, location string, opts ...store.Option) *store.DB {
	tb.Helper()
	db, err := e.reopen(location, opts...)
	if err != nil {
		tb.Fatalf("open store %s: %v", location, err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("close store: %v", err)
		}
	})
	return db
}

// reopen opens a store on the database at location, for the caller to
// close.
func (e *env) reopen(location string, opts ...store.Option) (*store.DB, error) {
	c := &clock{}
	db, err := store.Open(context.Background(), location, append([]store.Option{store.WithClock(c.now)}, opts...)...)
	if err != nil {
		return nil, err
	}
	e.clocks.Store(db, c)
	return db, nil
}

// setClock makes db's clock read at from now on.
func (e *env) setClock(db *store.DB, at time.Time) {
	c, ok := e.clocks.Load(db)
	if !ok {
		panic("storetest: setClock of a store the suite did not open")
	}
	c.(*clock).mu.Lock()
	defer c.(*clock).mu.Unlock()
	c.(*clock).t = at
}

// base is a fixed instant the tests build times from.
func base() time.Time { return time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC) }

// newSandbox returns a running sandbox with every field set.
func newSandbox(id string) *store.Sandbox {
	allow := true
	return &store.Sandbox{
		ID:                  id,
		TeamID:              store.DefaultTeamID,
		TemplateID:          "base",
		Alias:               "base-alias",
		ClientID:            "client-1",
		RuntimeClass:        store.RuntimeGVisor,
		WorkloadType:        store.WorkloadCompute,
		State:               store.StateRunning,
		CPUCount:            2,
		MemoryMB:            512,
		DiskSizeMB:          1024,
		Metadata:            map[string]string{"owner": "alice"},
		EnvVars:             map[string]string{"PATH": "/bin"},
		EnvdVersion:         "0.6.4",
		EnvdAccessToken:     "envd-token",
		TrafficAccessToken:  "traffic-token",
		AllowInternetAccess: &allow,
		Network:             json.RawMessage(`{"allowOut":["1.1.1.1"]}`),
		AutoPause:           true,
		AutoResume:          true,
		StartedAt:           base(),
		EndAt:               base().Add(5 * time.Minute),
		NodeID:              "node-a",
		Address:             "10.0.0.2",
	}
}

// mustInsert inserts sandboxes one by one, failing the test on error.
func mustInsert(tb testing.TB, db *store.DB, sbs ...*store.Sandbox) {
	tb.Helper()
	for _, s := range sbs {
		if err := db.InsertSandbox(context.Background(), s); err != nil {
			tb.Fatalf("InsertSandbox(%s): %v", s.ID, err)
		}
	}
}

// wantErr checks err against a sentinel (nil = no error expected).
func wantErr(tb testing.TB, what string, err, want error) {
	tb.Helper()
	switch {
	case want == nil && err != nil:
		tb.Fatalf("%s: unexpected error %v", what, err)
	case want != nil && !errors.Is(err, want):
		tb.Fatalf("%s: error %v, want %v", what, err, want)
	}
}

// absent fails the test unless sandbox id is unknown to db.
func absent(tb testing.TB, db *store.DB, id string) {
	tb.Helper()
	if s, err := db.GetSandbox(context.Background(), id); !errors.Is(err, store.ErrNotFound) {
		tb.Fatalf("sandbox %s: %+v, %v; want it absent", id, s, err)
	}
}

// runConcurrently runs fn(0..n-1) in n goroutines released together and
// reports every error.
func runConcurrently(t *testing.T, n int, fn func(i int) error) {
	t.Helper()
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make(chan error, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			if err := fn(i); err != nil {
				errs <- fmt.Errorf("goroutine %d: %w", i, err)
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
