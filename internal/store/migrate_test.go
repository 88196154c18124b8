package store

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestSQLiteMigrationsRebuildCleanly: the SQLite migrations that rebuild
// tables (SQLite cannot add a NOT NULL reference) leave no temporary table
// and no broken reference behind. (What the migrations keep is the
// conformance suite's: storetest's MigrateToTeamsKeepsEverything.)
func TestSQLiteMigrationsRebuildCleanly(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	old, err := Open(ctx, path, WithSchemaVersion(1))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO sandboxes VALUES ('sbxold', 'web', 'w', 'lelantos', 'gvisor', 'compute', 'paused', 2, 512, 1024,
			'{}', '{}', '0.6.4', 'e', 't', 1, NULL, 1, 0, 1, 2, 'local', '', '', 1, 1, 1)`,
		`INSERT INTO sandbox_metadata VALUES ('sbxold', 'owner', 'alice', 1)`,
		`INSERT INTO sandbox_events VALUES ('sbxold', 1, 'first')`,
		`INSERT INTO templates VALUES ('web', 'w1', '/t/web', 1, 256, 1024, '', '', '0.6.4', 'ready', 0, 1, 1)`,
		`INSERT INTO template_aliases VALUES ('w', 'web')`,
	} {
		if _, err := old.sql.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	db := openAt(t, path)
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
	defer rows.Close()
	if rows.Next() {
		t.Error("foreign key violations after migration")
	}
}
