package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"testing/fstest"
	"time"
)

func TestOpenMigratesAndSurvivesReopen(t *testing.T) {
	known, err := loadMigrations(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		rel  string
	}{
		{"plain", "state.db"},
		{"missing parent directories", "a/b/c/state.db"},
		{"URI-special characters", "dir with space/st?ate#%20&x=y.db"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), tt.rel)
			db, err := Open(ctx, path)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			for _, p := range []string{path, path + "-wal"} {
				fi, err := os.Stat(p)
				if err != nil {
					t.Fatalf("database file not created at %q: %v", p, err)
				}
				if fi.Mode().Perm() != 0o600 {
					t.Errorf("%s has mode %v, want 0600", p, fi.Mode().Perm())
				}
			}
			if v, err := db.SchemaVersion(ctx); err != nil || v != len(known) {
				t.Fatalf("SchemaVersion = %d, %v; want %d", v, err, len(known))
			}
			for _, p := range []struct{ pragma, want string }{
				{"journal_mode", "wal"}, {"synchronous", "2"}, {"foreign_keys", "1"}, {"busy_timeout", "10000"},
			} {
				var got string
				if err := db.sql.QueryRow("PRAGMA " + p.pragma).Scan(&got); err != nil || got != p.want {
					t.Fatalf("PRAGMA %s = %q, %v; want %q", p.pragma, got, err, p.want)
				}
			}

			sb := newSandbox("sbxreopen")
			mustInsert(t, db, sb)
			key := &APIKey{ID: "k1", TeamID: DefaultTeamID, Name: "ci", Hash: "abc123", Prefix: "e2b_ab"}
			if err := db.InsertAPIKey(ctx, key); err != nil {
				t.Fatal(err)
			}
			tpl := &Template{ID: "base", BuildID: "b1", Status: TemplateReady, Aliases: []string{"default"}}
			if err := db.PutTemplate(ctx, tpl); err != nil {
				t.Fatal(err)
			}
			if err := db.AppendEvent(ctx, sb.ID, Event{Timestamp: base(), Line: "created"}); err != nil {
				t.Fatal(err)
			}
			if err := db.InsertMetric(ctx, sb.ID, Metric{Timestamp: base(), CPUCount: 2}); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}

			db, err = Open(ctx, path)
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			defer db.Close()
			if n := countRows(t, db, "schema_migrations", "1"); n != len(known) {
				t.Fatalf("schema_migrations has %d rows after reopen, want %d", n, len(known))
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
			if tp, err := db.FindTemplate(ctx, DefaultTeamID, "default"); err != nil || tp.ID != "base" {
				t.Fatalf("GetTemplate after reopen = %+v, %v", tp, err)
			}
			if ev, err := db.ListEvents(ctx, sb.ID, time.Time{}, 0); err != nil || len(ev) != 1 {
				t.Fatalf("ListEvents after reopen = %v, %v", ev, err)
			}
			if ms, err := db.ListMetrics(ctx, sb.ID, time.Time{}, time.Time{}); err != nil || len(ms) != 1 {
				t.Fatalf("ListMetrics after reopen = %v, %v", ms, err)
			}
		})
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.sql.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future.sql', 0)`); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = Open(ctx, path)
	if !errors.Is(err, ErrSchemaTooNew) {
		if db != nil {
			db.Close()
		}
		t.Fatalf("Open of a newer schema: %v, want ErrSchemaTooNew", err)
	}
}

func TestOpenBadPath(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	notDB := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(notDB, []byte("this is not a database file, not at all, no"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"", filepath.Join(file, "state.db"), notDB} {
		db, err := Open(context.Background(), path)
		if err == nil {
			db.Close()
			t.Errorf("Open(%q) succeeded, want an error", path)
		}
	}
}

func TestApplyMigrations(t *testing.T) {
	ok1 := migration{version: 1, name: "0001_a.sql", sql: "CREATE TABLE a (x INTEGER);"}
	ok2 := migration{version: 2, name: "0002_b.sql", sql: "CREATE TABLE b (y INTEGER); INSERT INTO b VALUES (7);"}
	bad2 := migration{version: 2, name: "0002_bad.sql", sql: "CREATE TABLE c (z INTEGER); THIS IS NOT SQL;"}
	tests := []struct {
		name        string
		steps       [][]migration // applied one after another to the same file
		wantErr     bool          // from the last step
		wantVersion int
		wantTables  []string
		noTables    []string
	}{
		{"all at once", [][]migration{{ok1, ok2}}, false, 2, []string{"a", "b"}, nil},
		{"one then the next", [][]migration{{ok1}, {ok1, ok2}}, false, 2, []string{"a", "b"}, nil},
		{"failure rolls everything back", [][]migration{{ok1, bad2}}, true, 0, nil, []string{"a", "c"}},
		{"failure keeps earlier steps", [][]migration{{ok1}, {ok1, bad2}}, true, 1, []string{"a"}, []string{"c"}},
		{"older build refuses newer file", [][]migration{{ok1, ok2}, {ok1}}, true, 2, []string{"a", "b"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openTestDB(t)
			// Start from an empty file: drop what Open applied.
			if _, err := db.sql.Exec(`DELETE FROM schema_migrations`); err != nil {
				t.Fatal(err)
			}
			var err error
			for _, step := range tt.steps {
				err = db.applyMigrations(context.Background(), step)
			}
			if (err != nil) != tt.wantErr {
				t.Fatalf("last step error = %v, wantErr %v", err, tt.wantErr)
			}
			if v, _ := db.SchemaVersion(context.Background()); v != tt.wantVersion {
				t.Fatalf("version = %d, want %d", v, tt.wantVersion)
			}
			for _, tbl := range tt.wantTables {
				if countRows(t, db, "sqlite_schema", "type = 'table' AND name = ?", tbl) != 1 {
					t.Errorf("table %s missing", tbl)
				}
			}
			for _, tbl := range tt.noTables {
				if countRows(t, db, "sqlite_schema", "type = 'table' AND name = ?", tbl) != 0 {
					t.Errorf("table %s exists, want rolled back", tbl)
				}
			}
		})
	}
}

func TestLoadMigrations(t *testing.T) {
	sql := &fstest.MapFile{Data: []byte("SELECT 1;")}
	tests := []struct {
		name    string
		files   fstest.MapFS
		want    []int
		wantErr bool
	}{
		{"sorted by number", fstest.MapFS{"m/0002_b.sql": sql, "m/0001_a.sql": sql, "m/0003_c.sql": sql}, []int{1, 2, 3}, false},
		{"gap", fstest.MapFS{"m/0001_a.sql": sql, "m/0003_c.sql": sql}, nil, true},
		{"repeat", fstest.MapFS{"m/0001_a.sql": sql, "m/1_b.sql": sql}, nil, true},
		{"bad name", fstest.MapFS{"m/0001_a.sql": sql, "m/notes.txt": sql}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			migs, err := loadMigrations(tt.files, "m")
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, wantErr %v", err, tt.wantErr)
			}
			var got []int
			for _, m := range migs {
				got = append(got, m.version)
			}
			if !tt.wantErr && !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("versions = %v, want %v", got, tt.want)
			}
		})
	}
}
