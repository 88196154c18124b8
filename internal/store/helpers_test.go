package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// base is a fixed instant the tests build times from.
func base() time.Time { return time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC) }

// openTestDB opens a fresh SQLite store in a temporary directory, closed at
// the end of the test.
func openTestDB(tb testing.TB) *DB {
	tb.Helper()
	return openAt(tb, filepath.Join(tb.TempDir(), "state.db"))
}

// openAt opens the SQLite store at path, closed at the end of the test.
func openAt(tb testing.TB, path string) *DB {
	tb.Helper()
	db, err := Open(context.Background(), path)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return db
}

// newSandbox returns a running sandbox of the default team.
func newSandbox(id string) *Sandbox {
	return &Sandbox{ID: id, TeamID: DefaultTeamID, TemplateID: "base", State: StateRunning, CPUCount: 2,
		MemoryMB: 512, DiskSizeMB: 1024, Metadata: map[string]string{"owner": "alice"}, StartedAt: base(),
		EndAt: base().Add(5 * time.Minute), NodeID: "node-a", Address: "10.0.0.2"}
}

// mustInsert inserts sandboxes one by one, failing the test on error.
func mustInsert(tb testing.TB, db *DB, sbs ...*Sandbox) {
	tb.Helper()
	for _, s := range sbs {
		if err := db.InsertSandbox(context.Background(), s); err != nil {
			tb.Fatalf("InsertSandbox(%s): %v", s.ID, err)
		}
	}
}

// bulkInsert inserts many sandboxes in one transaction (fast set-up).
func bulkInsert(tb testing.TB, db *DB, sbs []*Sandbox) {
	tb.Helper()
	ctx := context.Background()
	err := db.write(ctx, func(tx conn) error {
		for _, s := range sbs {
			r, err := encodeSandbox(s, base(), base())
			if err != nil {
				return err
			}
			if err := insertSandboxTx(ctx, tx, s, r); err != nil {
				return fmt.Errorf("%s: %w", s.ID, err)
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("bulk insert: %v", err)
	}
}

// countRows counts the rows of a table matching a WHERE clause.
func countRows(tb testing.TB, db *DB, table, where string, args ...any) int {
	tb.Helper()
	var n int
	if err := db.sql.QueryRow(`SELECT COUNT(*) FROM `+table+` WHERE `+where, args...).Scan(&n); err != nil {
		tb.Fatalf("count %s: %v", table, err)
	}
	return n
}
