package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/store"
)

// schemaVersion is the newest schema version the suite knows; a store opened
// without WithSchemaVersion reaches it.
const schemaVersion = 9

// testOpenMigratesAndSurvivesReopen: a new database gets the newest schema,
// and what was written is there after a reopen.
func testOpenMigratesAndSurvivesReopen(t *testing.T, e *env) {
	ctx := context.Background()
	loc := e.b.NewLocation(t)
	db, err := e.reopen(loc)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if v, err := db.SchemaVersion(ctx); err != nil || v != schemaVersion {
		t.Fatalf("SchemaVersion = %d, %v; want %d", v, err, schemaVersion)
	}
	sb := newSandbox("sbxreopen")
	mustInsert(t, db, sb)
	key := &store.APIKey{ID: "k1", TeamID: store.DefaultTeamID, Name: "ci", Hash: "abc123", Prefix: "e2b_ab"}
	if err := db.InsertAPIKey(ctx, key); err != nil {
		t.Fatal(err)
	}
	tpl := &store.Template{ID: "base", BuildID: "b1", Status: store.TemplateReady, Aliases: []string{"default"}}
	if err := db.PutTemplate(ctx, tpl); err != nil {
		t.Fatal(err)
	}
	if err := db.AppendEvent(ctx, sb.ID, store.Event{Timestamp: base(), Line: "created"}); err != nil {
		t.Fatal(err)
	}
	if err := db.InsertMetric(ctx, sb.ID, store.Metric{Timestamp: base(), CPUCount: 2}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	db = e.openAt(t, loc)
	if v, err := db.SchemaVersion(ctx); err != nil || v != schemaVersion {
		t.Fatalf("SchemaVersion after reopen = %d, %v; want %d", v, err, schemaVersion)
	}
	got, err := db.GetSandbox(ctx, sb.ID)
	if err != nil {
		t.Fatalf("GetSandbox after reopen: %v", err)
	}
	if !reflect.DeepEqual(got, sb) {
		t.Fatalf("sandbox after reopen:\n got %+v\nwant %+v", got, sb)
	}
	if k, err := db.APIKeyByHash(ctx, key.Hash); err != nil || k.ID != key.ID {
		t.Fatalf("APIKeyByHash after reopen = %+v, %v", k, err)
	}
	if tp, err := db.FindTemplate(ctx, store.DefaultTeamID, "default"); err != nil || tp.ID != "base" {
		t.Fatalf("GetTemplate after reopen = %+v, %v", tp, err)
	}
	if ev, err := db.ListEvents(ctx, sb.ID, time.Time{}, 0); err != nil || len(ev) != 1 {
		t.Fatalf("ListEvents after reopen = %v, %v", ev, err)
	}
	if ms, err := db.ListMetrics(ctx, sb.ID, time.Time{}, time.Time{}); err != nil || len(ms) != 1 {
		t.Fatalf("ListMetrics after reopen = %v, %v", ms, err)
	}
}

// testOpenRefusesNewerSchema: a database a newer build migrated is refused.
func testOpenRefusesNewerSchema(t *testing.T, e *env) {
	loc := e.b.NewLocation(t)
	db, err := e.reopen(loc)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	e.b.Exec(t, loc, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, '0999_future.sql', 0)`)
	db, err = e.reopen(loc)
	if !errors.Is(err, store.ErrSchemaTooNew) {
		if db != nil {
			db.Close()
		}
		t.Fatalf("Open of a newer schema: %v, want ErrSchemaTooNew", err)
	}
}

// testOpenAtSchemaVersion: WithSchemaVersion stops the migrations there, a
// later plain open goes on from it, and a version past the newest, or below
// the database's, is refused.
func testOpenAtSchemaVersion(t *testing.T, e *env) {
	ctx := context.Background()
	loc := e.b.NewLocation(t)
	for _, v := range []int{1, 3} {
		db, err := e.reopen(loc, store.WithSchemaVersion(v))
		if err != nil {
			t.Fatalf("open at version %d: %v", v, err)
		}
		if got, err := db.SchemaVersion(ctx); err != nil || got != v {
			t.Fatalf("SchemaVersion = %d, %v; want %d", got, err, v)
		}
		db.Close()
	}
	if db, err := e.reopen(loc, store.WithSchemaVersion(2)); !errors.Is(err, store.ErrSchemaTooNew) {
		if err == nil {
			db.Close()
		}
		t.Fatalf("open at version 2 of a database at 3: %v, want ErrSchemaTooNew", err)
	}
	if db, err := e.reopen(loc, store.WithSchemaVersion(schemaVersion+1)); !errors.Is(err, store.ErrInvalid) {
		if err == nil {
			db.Close()
		}
		t.Fatalf("open at an unknown version: %v, want ErrInvalid", err)
	}
	db := e.openAt(t, loc)
	if got, err := db.SchemaVersion(ctx); err != nil || got != schemaVersion {
		t.Fatalf("SchemaVersion after a plain open = %d, %v; want %d", got, err, schemaVersion)
	}
	mustInsert(t, db, newSandbox("sbx1"))
}

// itoa formats an int64 for SQL.
func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// testMigrateToTeamsKeepsEverything opens a store written by the schema
// before teams, with a row in every table, and checks that each row is still
// there, belongs to the default team, and that the migrated tables keep their
// constraints (cascades, uniqueness, foreign keys).
func testMigrateToTeamsKeepsEverything(t *testing.T, e *env) {
	ctx := context.Background()
	loc := e.b.NewLocation(t)
	old, err := e.reopen(loc, store.WithSchemaVersion(1))
	if err != nil {
		t.Fatal(err)
	}
	old.Close()
	ts := base().UnixNano()
	e.b.Exec(t, loc,
		`INSERT INTO sandboxes (id, template_id, alias, client_id, runtime_class, workload_type, state, cpu_count,
			memory_mb, disk_size_mb, metadata, env_vars, envd_version, envd_access_token, traffic_access_token,
			allow_internet_access, network, auto_pause, auto_resume, started_at, end_at, node_id, address, end_reason,
			created_at, updated_at, version)
		VALUES ('sbxold', 'web', 'w', 'lelantos', 'gvisor', 'compute', 'paused', 2, 512, 1024,
			'{"owner":"alice"}', '{"A":"1"}', '0.6.4', 'envd-tok', 'traffic-tok', TRUE, '{"allowOut":["1.1.1.1"]}',
			TRUE, FALSE, `+itoa(ts)+`, `+itoa(ts+int64(time.Second))+`, 'local', '', '', `+itoa(ts)+`, `+itoa(ts)+`, 7)`,
		`INSERT INTO sandbox_metadata (sandbox_id, key, value, started_at) VALUES ('sbxold', 'owner', 'alice', `+itoa(ts)+`)`,
		`INSERT INTO sandbox_metrics (sandbox_id, ts, cpu_count, cpu_used_pct, mem_used, mem_total, mem_cache,
			disk_used, disk_total) VALUES ('sbxold', `+itoa(ts)+`, 2, 12.5, 100, 200, 10, 300, 400)`,
		`INSERT INTO sandbox_events (sandbox_id, ts, line) VALUES ('sbxold', `+itoa(ts)+`, 'first')`,
		`INSERT INTO sandbox_events (sandbox_id, ts, line) VALUES ('sbxold', `+itoa(ts)+`, 'second, same time')`,
		`INSERT INTO api_keys (id, name, hash, prefix, created_at, last_used_at, revoked_at)
			VALUES ('key_0123456789abcdef', 'admin', 'hash1', 'e2b_abcdef', `+itoa(ts)+`, `+itoa(ts+5)+`, NULL)`,
		`INSERT INTO api_keys (id, name, hash, prefix, created_at, last_used_at, revoked_at)
			VALUES ('key_fedcba9876543210', 'old', 'hash2', 'e2b_123456', `+itoa(ts)+`, NULL, `+itoa(ts+9)+`)`,
		`INSERT INTO templates (id, build_id, rootfs_path, cpu_count, memory_mb, disk_size_mb, start_cmd, ready_cmd,
			envd_version, status, public, created_at, updated_at)
			VALUES ('base', 'b1', '/t/base', 2, 512, 2048, '', '', '0.6.4', 'ready', TRUE, `+itoa(ts)+`, `+itoa(ts)+`)`,
		`INSERT INTO templates (id, build_id, rootfs_path, cpu_count, memory_mb, disk_size_mb, start_cmd, ready_cmd,
			envd_version, status, public, created_at, updated_at)
			VALUES ('web', 'w1', '/t/web', 1, 256, 1024, 'serve', 'ready-cmd', '0.6.4', 'ready', FALSE, `+itoa(ts)+`, `+itoa(ts)+`)`,
		`INSERT INTO template_aliases (alias, template_id) VALUES ('w', 'web')`,
	)

	db := e.openAt(t, loc)
	if v, err := db.SchemaVersion(ctx); err != nil || v != schemaVersion {
		t.Fatalf("SchemaVersion = %d, %v", v, err)
	}
	team, err := db.TeamBySlug(ctx, store.DefaultTeamSlug)
	if err != nil || team.ID != store.DefaultTeamID || team.CreatedAt.IsZero() || team.Quotas != (store.QuotaSettings{}) {
		t.Fatalf("default team = %+v, %v", team, err)
	}

	allow := true
	want := &store.Sandbox{ID: "sbxold", TeamID: store.DefaultTeamID, TemplateID: "web", Alias: "w", ClientID: "lelantos",
		RuntimeClass: store.RuntimeGVisor, WorkloadType: store.WorkloadCompute, State: store.StatePaused, CPUCount: 2,
		MemoryMB: 512, DiskSizeMB: 1024, Metadata: map[string]string{"owner": "alice"}, EnvVars: map[string]string{"A": "1"},
		EnvdVersion: "0.6.4", EnvdAccessToken: "envd-tok", TrafficAccessToken: "traffic-tok",
		AllowInternetAccess: &allow, Network: json.RawMessage(`{"allowOut":["1.1.1.1"]}`), AutoPause: true,
		StartedAt: base(), EndAt: base().Add(time.Second), NodeID: "local", CreatedAt: base(), UpdatedAt: base(), Version: 7}
	got, err := db.GetSandbox(ctx, "sbxold")
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("sandbox after migration:\n got %+v, %v\nwant %+v", got, err, want)
	}
	items, _, err := db.ListSandboxes(ctx, store.SandboxFilter{TeamID: store.DefaultTeamID, Metadata: map[string]string{"owner": "alice"}})
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

	keys, err := db.ListTeamAPIKeys(ctx, store.DefaultTeamID)
	if err != nil || len(keys) != 2 {
		t.Fatalf("keys of the default team = %+v, %v", keys, err)
	}
	if k := keys[0]; k.ID != "key_0123456789abcdef" || k.Name != "admin" || k.Prefix != "e2b_abcdef" || k.Suffix != "" ||
		k.LastUsedAt == nil || k.RevokedAt != nil {
		t.Errorf("admin key after migration = %+v", k)
	}
	if k, err := db.APIKeyByHash(ctx, "hash2"); err != nil || k.TeamID != store.DefaultTeamID || k.RevokedAt == nil {
		t.Errorf("revoked key after migration = %+v, %v", k, err)
	}

	web, err := db.FindTemplate(ctx, store.DefaultTeamID, "w")
	if err != nil || web.ID != "web" || web.Name != "web" || web.TeamID != store.DefaultTeamID || web.StartCmd != "serve" ||
		!reflect.DeepEqual(web.Aliases, []string{"w"}) {
		t.Fatalf("template web after migration = %+v, %v", web, err)
	}
	if b, err := db.GetTemplate(ctx, "base"); err != nil || !b.Public || b.Name != "base" {
		t.Fatalf("base after migration = %+v, %v", b, err)
	}

	// The migrated tables keep their cascades: a sandbox made again under the
	// ID, and a template, inherit nothing of the old rows.
	if err := db.DeleteSandbox(ctx, "sbxold"); err != nil {
		t.Fatal(err)
	}
	again := newSandbox("sbxold")
	again.Metadata = nil
	mustInsert(t, db, again)
	if items, _, err := db.ListSandboxes(ctx, store.SandboxFilter{Metadata: map[string]string{"owner": "alice"}}); err != nil || len(items) != 0 {
		t.Errorf("metadata of the deleted sandbox: %d listed, %v", len(items), err)
	}
	if ev, err := db.ListEvents(ctx, "sbxold", time.Time{}, 0); err != nil || len(ev) != 0 {
		t.Errorf("events of the deleted sandbox: %+v, %v", ev, err)
	}
	if ms, err := db.ListMetrics(ctx, "sbxold", time.Time{}, time.Time{}); err != nil || len(ms) != 0 {
		t.Errorf("samples of the deleted sandbox: %+v, %v", ms, err)
	}
	if err := db.DeleteTemplate(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if err := db.PutTemplate(ctx, &store.Template{ID: "web"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.FindTemplate(ctx, store.DefaultTeamID, "w"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the alias of the deleted template: %v", err)
	}
	// Uniqueness and references to the teams.
	wantErr(t, "a key of an unknown team", db.InsertAPIKey(ctx, &store.APIKey{ID: "k", TeamID: "nope", Hash: "h"}), store.ErrNotFound)
	wantErr(t, "a reused key hash", db.InsertAPIKey(ctx, &store.APIKey{ID: "k", TeamID: store.DefaultTeamID, Hash: "hash1"}), store.ErrExists)
	wantErr(t, "a template of an unknown team", db.PutTemplate(ctx, &store.Template{ID: "t", TeamID: "nope"}), store.ErrNotFound)
	wantErr(t, "a second template named web", db.PutTemplate(ctx, &store.Template{ID: "web2", Name: "web"}), store.ErrExists)
}
