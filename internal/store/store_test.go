package store

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"testing/fstest"
)

// TestSQLiteFile: the file (and its WAL) is private to the owner wherever it
// is, its parent directories are made, and every connection runs with the
// pragmas durability and the foreign keys need.
func TestSQLiteFile(t *testing.T) {
	for _, rel := range []string{"state.db", "a/b/c/state.db", "dir with space/st?ate#%20&x=y.db"} {
		t.Run(rel, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), rel)
			db := openAt(t, path)
			if db.Path() != path || db.Dialect() != "sqlite" {
				t.Errorf("Path %q, Dialect %q", db.Path(), db.Dialect())
			}
			mustInsert(t, db, newSandbox("sbx1"))
			for _, p := range []string{path, path + "-wal"} {
				fi, err := os.Stat(p)
				if err != nil {
					t.Fatalf("database file not created at %q: %v", p, err)
				}
				if fi.Mode().Perm() != 0o600 {
					t.Errorf("%s has mode %v, want 0600", p, fi.Mode().Perm())
				}
			}
			for _, p := range []struct{ pragma, want string }{
				{"journal_mode", "wal"}, {"synchronous", "2"}, {"foreign_keys", "1"}, {"busy_timeout", "10000"},
			} {
				var got string
				if err := db.sql.QueryRow("PRAGMA " + p.pragma).Scan(&got); err != nil || got != p.want {
					t.Fatalf("PRAGMA %s = %q, %v; want %q", p.pragma, got, err, p.want)
				}
			}
		})
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

// TestBothDialectsKnowTheSameVersions: every schema version exists for both
// databases, under the same file name.
func TestBothDialectsKnowTheSameVersions(t *testing.T) {
	var names [2][]string
	for i, d := range []dialect{sqliteDialect{}, postgresDialect{}} {
		fsys, dir := d.migrations()
		migs, err := loadMigrations(fsys, dir)
		if err != nil {
			t.Fatalf("%s: %v", d.name(), err)
		}
		for _, m := range migs {
			names[i] = append(names[i], m.name)
		}
	}
	if !reflect.DeepEqual(names[0], names[1]) {
		t.Fatalf("SQLite migrations %v, PostgreSQL migrations %v", names[0], names[1])
	}
}
