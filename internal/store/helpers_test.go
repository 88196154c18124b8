package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// base is a fixed instant the tests build times from.
func base() time.Time { return time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC) }

// openTestDB opens a fresh store in a temporary directory, closed at the end
// of the test.
func openTestDB(tb testing.TB) *DB {
	tb.Helper()
	db, err := Open(context.Background(), filepath.Join(tb.TempDir(), "state.db"))
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

// fixedClock makes db.now return t.
func fixedClock(db *DB, t time.Time) { db.now = func() time.Time { return t } }

// newSandbox returns a running sandbox with every field set.
func newSandbox(id string) *Sandbox {
	allow := true
	return &Sandbox{
		ID:                  id,
		TeamID:              DefaultTeamID,
		TemplateID:          "base",
		Alias:               "base-alias",
		ClientID:            "client-1",
		RuntimeClass:        RuntimeGVisor,
		WorkloadType:        WorkloadCompute,
		State:               StateRunning,
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
func mustInsert(tb testing.TB, db *DB, sbs ...*Sandbox) {
	tb.Helper()
	for _, s := range sbs {
		if err := db.InsertSandbox(context.Background(), s); err != nil {
			tb.Fatalf("InsertSandbox(%s): %v", s.ID, err)
		}
	}
}

// bulkInsert inserts many sandboxes in one transaction (fast test setup).
func bulkInsert(tb testing.TB, db *DB, sbs []*Sandbox) {
	tb.Helper()
	ctx := context.Background()
	err := db.write(ctx, func(tx *sql.Tx) error {
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
