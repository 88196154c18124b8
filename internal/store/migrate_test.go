package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// openAtVersion makes a database file migrated only up to version v, as an
// older build of Lelantos left it, and returns its raw handle.
func openAtVersion(t *testing.T, path string, v int) *sql.DB {
	t.Helper()
	migs, err := loadMigrations(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	sdb, err := sql.Open("sqlite", dsn(path))
	if err != nil {
		t.Fatal(err)
	}
	old := &DB{sql: sdb, path: path, wlock: make(chan struct{}, 1), now: time.Now}
	if err := old.applyMigrations(context.Background(), migs[:v]); err != nil {
		t.Fatalf("apply migrations up to %d: %v", v, err)
	}
	return sdb
}

// TestMigrateToTeamsKeepsEverything opens a store written by the schema
// before teams, with a row in every table, and checks that each row is
// still there, belongs to the default team, and that the rebuilt tables
// keep their constraints (cascades, uniqueness, foreign keys).
func TestMigrateToTeamsKeepsEverything(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	old := openAtVersion(t, path, 1)
	ts := base().UnixNano()
	for _, q := range []string{
		`INSERT INTO sandboxes VALUES ('sbxold', 'web', 'w', 'lelantos', 'gvisor', 'compute', 'paused', 2, 512, 1024,
			'{"owner":"alice"}', '{"A":"1"}', '0.6.4', 'envd-tok', 'traffic-tok', 1, '{"allowOut":["1.1.1.1"]}',
			1, 0, ` + itoa(ts) + `, ` + itoa(ts+int64(time.Second)) + `, 'local', '', '', ` + itoa(ts) + `, ` + itoa(ts) + `, 7)`,
		`INSERT INTO sandbox_metadata VALUES ('sbxold', 'owner', 'alice', ` + itoa(ts) + `)`,
		`INSERT INTO sandbox_metrics VALUES ('sbxold', ` + itoa(ts) + `, 2, 12.5, 100, 200, 10, 300, 400)`,
		`INSERT INTO sandbox_events VALUES ('sbxold', ` + itoa(ts) + `, 'first')`,
		`INSERT INTO sandbox_events VALUES ('sbxold', ` + itoa(ts) + `, 'second, same time')`,
		`INSERT INTO api_keys VALUES ('key_0123456789abcdef', 'admin', 'hash1', 'e2b_abcdef', ` + itoa(ts) + `, ` + itoa(ts+5) + `, NULL)`,
		`INSERT INTO api_keys VALUES ('key_fedcba9876543210', 'old', 'hash2', 'e2b_123456', ` + itoa(ts) + `, NULL, ` + itoa(ts+9) + `)`,
		`INSERT INTO templates VALUES ('base', 'b1', '/t/base', 2, 512, 2048, '', '', '0.6.4', 'ready', 1, ` + itoa(ts) + `, ` + itoa(ts) + `)`,
		`INSERT INTO templates VALUES ('web', 'w1', '/t/web', 1, 256, 1024, 'serve', 'ready-cmd', '0.6.4', 'ready', 0, ` + itoa(ts) + `, ` + itoa(ts) + `)`,
		`INSERT INTO template_aliases VALUES ('w', 'web')`,
	} {
		if _, err := old.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("open the old store: %v", err)
	}
	defer db.Close()
	if v, err := db.SchemaVersion(ctx); err != nil || v < 2 {
		t.Fatalf("SchemaVersion = %d, %v", v, err)
	}
	team, err := db.TeamBySlug(ctx, DefaultTeamSlug)
	if err != nil || team.ID != DefaultTeamID || team.CreatedAt.IsZero() || team.Quotas != (QuotaSettings{}) {
		t.Fatalf("default team = %+v, %v", team, err)
	}

	allow := true
	want := &Sandbox{ID: "sbxold", TeamID: DefaultTeamID, TemplateID: "web", Alias: "w", ClientID: "lelantos",
		RuntimeClass: RuntimeGVisor, WorkloadType: WorkloadCompute, State: StatePaused, CPUCount: 2, MemoryMB: 512,
		DiskSizeMB: 1024, Metadata: map[string]string{"owner": "alice"}, EnvVars: map[string]string{"A": "1"},
		EnvdVersion: "0.6.4", EnvdAccessToken: "envd-tok", TrafficAccessToken: "traffic-tok",
		AllowInternetAccess: &allow, Network: json.RawMessage(`{"allowOut":["1.1.1.1"]}`), AutoPause: true,
		StartedAt: base(), EndAt: base().Add(time.Second), NodeID: "local", CreatedAt: base(), UpdatedAt: base(), Version: 7}
	got, err := db.GetSandbox(ctx, "sbxold")
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("sandbox after migration:\n got %+v, %v\nwant %+v", got, err, want)
	}
	items, _, err := db.ListSandboxes(ctx, SandboxFilter{TeamID: DefaultTeamID, Metadata: map[string]string{"owner": "alice"}})
	if err != nil || len(items) != 1 {
		t.Fatalf("metadata listing of the default team: %d items, %v", len(items), err)
	}
	events, err := db.ListEvents(ctx, "sbxold", time.Time{}, 0)
	if err != nil || len(events) != 2 || events[0].Line != "first" || events[1].Line != "second, same time" {
		t.Fatalf("events after migration = %+v, %v", events, err)
	}
	ms, err := db.ListMetrics(ctx, "sbxold", time.Time{}, time.Time{})
	if err != nil || len(ms) != 1 || ms[0].CPUUsedPct != 12.5 || ms[0].DiskTotal != 400 {
		t.Fatalf("metrics after migration = %+v, %v", ms, err)
	}

	keys, err := db.ListTeamAPIKeys(ctx, DefaultTeamID)
	if err != nil || len(keys) != 2 {
		t.Fatalf("keys of the default team = %+v, %v", keys, err)
	}
	if k := keys[0]; k.ID != "key_0123456789abcdef" || k.Name != "admin" || k.Prefix != "e2b_abcdef" || k.Suffix != "" ||
		k.LastUsedAt == nil || k.RevokedAt != nil {
		t.Errorf("admin key after migration = %+v", k)
	}
	if k, err := db.APIKeyByHash(ctx, "hash2"); err != nil || k.TeamID != DefaultTeamID || k.RevokedAt == nil {
		t.Errorf("revoked key after migration = %+v, %v", k, err)
	}

	web, err := db.FindTemplate(ctx, DefaultTeamID, "w")
	if err != nil || web.ID != "web" || web.Name != "web" || web.TeamID != DefaultTeamID || web.StartCmd != "serve" ||
		!reflect.DeepEqual(web.Aliases, []string{"w"}) {
		t.Fatalf("template web after migration = %+v, %v", web, err)
	}
	if b, err := db.GetTemplate(ctx, "base"); err != nil || !b.Public || b.Name != "base" {
		t.Fatalf("base after migration = %+v, %v", b, err)
	}

	// The rebuilt tables reference each other and the teams.
	var schema string
	if err := db.sql.QueryRow(`SELECT group_concat(sql, ';') FROM sqlite_schema`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(schema, "_new") {
		t.Errorf("the schema still names a temporary table:\n%s", schema)
	}
	rows, err := db.sql.Query(`PRAGMA foreign_key_check`)
	if err != nil {
		t.Fatal(err)
	}
	if rows.Next() {
		t.Error("foreign key violations after migration")
	}
	rows.Close()
	if err := db.DeleteSandbox(ctx, "sbxold"); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"sandbox_metadata", "sandbox_metrics", "sandbox_events"} {
		if n := countRows(t, db, table, "1"); n != 0 {
			t.Errorf("%s keeps %d rows of the deleted sandbox: the cascade was lost", table, n)
		}
	}
	if err := db.DeleteTemplate(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if n := countRows(t, db, "template_aliases", "1"); n != 0 {
		t.Errorf("%d aliases of the deleted template remain", n)
	}
	wantErr(t, "a key of an unknown team", db.InsertAPIKey(ctx, &APIKey{ID: "k", TeamID: "nope", Hash: "h"}), ErrNotFound)
	wantErr(t, "a reused key hash", db.InsertAPIKey(ctx, &APIKey{ID: "k", TeamID: DefaultTeamID, Hash: "hash1"}), ErrExists)
}

// itoa formats an int64 for the SQL above.
func itoa(n int64) string { return strconv.FormatInt(n, 10) }
