package store

import (
	"context"
	"runtime"
	"testing"
	"time"
)

// TestSQLiteLeasesLeaveCommitsDurable: lease writes commit without syncing
// on SQLite, and every connection of the pool is back to synchronous=FULL
// afterwards, whether the lease call succeeded, lost to another holder or
// had its context end, so no other write loses its durability.
func TestSQLiteLeasesLeaveCommitsDurable(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	calls := []struct {
		name string
		call func() error
	}{
		{"acquire", func() error { _, err := db.AcquireLease(ctx, "op/a", "r1", time.Minute); return err }},
		{"renew", func() error { _, err := db.AcquireLease(ctx, "op/a", "r1", time.Minute); return err }},
		{"lose", func() error { _, err := db.AcquireLease(ctx, "op/a", "r2", time.Minute); return err }},
		{"release", func() error { return db.ReleaseLease(ctx, "op/a", "r1") }},
		{"cancelled", func() error {
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			_, _ = db.AcquireLease(cctx, "op/b", "r1", time.Minute)
			return nil
		}},
	}
	for _, c := range calls {
		if err := c.call(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
	}
	if l, err := db.GetLease(ctx, "op/a"); err == nil {
		t.Fatalf("released lease still there: %+v", l)
	}
	// Hold every connection of the pool at once and ask each.
	n := max(4, runtime.NumCPU())
	for i := range n {
		c, err := db.sql.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var sync int
		if err := c.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
			t.Fatal(err)
		}
		if sync != 2 {
			t.Errorf("connection %d of %d: synchronous = %d, want 2 (FULL)", i+1, n, sync)
		}
	}
}
