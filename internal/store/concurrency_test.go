package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

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

// TestConcurrentCompareAndSwap: 50 callers increment one counter with
// read-modify-write; only ErrConflict may happen, and no increment is lost.
func TestConcurrentCompareAndSwap(t *testing.T) {
	const callers, increments = 50, 4
	ctx := context.Background()
	db := openTestDB(t)
	s := newSandbox("counter")
	s.Metadata = map[string]string{"n": "0"}
	mustInsert(t, db, s)

	var conflicts atomic.Int64
	runConcurrently(t, callers, func(int) error {
		for range increments {
			for {
				cur, err := db.GetSandbox(ctx, "counter")
				if err != nil {
					return err
				}
				n, _ := strconv.Atoi(cur.Metadata["n"])
				cur.Metadata["n"] = strconv.Itoa(n + 1)
				err = db.UpdateSandbox(ctx, cur)
				if errors.Is(err, ErrConflict) {
					conflicts.Add(1)
					continue
				}
				if err != nil {
					return err
				}
				break
			}
		}
		return nil
	})
	got, err := db.GetSandbox(ctx, "counter")
	if err != nil {
		t.Fatal(err)
	}
	if got.Metadata["n"] != strconv.Itoa(callers*increments) || got.Version != callers*increments+1 {
		t.Fatalf("counter %s version %d, want %d and %d", got.Metadata["n"], got.Version,
			callers*increments, callers*increments+1)
	}
	t.Logf("%d conflicts retried", conflicts.Load())
}

// TestConcurrentMixedCallers: 50 callers use every kind of call at once;
// none may fail (in particular not with SQLITE_BUSY).
func TestConcurrentMixedCallers(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	if err := db.InsertAPIKey(ctx, &APIKey{ID: "k", TeamID: DefaultTeamID, Hash: "h"}); err != nil {
		t.Fatal(err)
	}
	runConcurrently(t, 50, func(i int) error {
		s := newSandbox(fmt.Sprintf("sb%02d", i))
		s.Metadata = map[string]string{"worker": strconv.Itoa(i)}
		if err := db.InsertSandbox(ctx, s); err != nil {
			return err
		}
		for j := range 3 {
			s.EndAt = s.EndAt.Add(time.Minute)
			s.Metadata["step"] = strconv.Itoa(j)
			if err := db.UpdateSandbox(ctx, s); err != nil {
				return err
			}
			if err := db.AppendEvent(ctx, s.ID, Event{Line: "step"}); err != nil {
				return err
			}
			if err := db.InsertMetric(ctx, s.ID, Metric{CPUCount: j}); err != nil {
				return err
			}
			if err := db.TouchAPIKey(ctx, "k", time.Now()); err != nil {
				return err
			}
			items, _, err := db.ListSandboxes(ctx, SandboxFilter{
				Metadata: map[string]string{"worker": strconv.Itoa(i)}, Limit: 10})
			if err != nil {
				return err
			}
			if len(items) != 1 || items[0].Version != int64(j)+2 {
				return fmt.Errorf("listed %d items, want own sandbox at version %d", len(items), j+2)
			}
		}
		if _, err := db.ListDue(ctx, DueFilter{State: StateRunning, Before: time.Now(), Limit: 100}); err != nil {
			return err
		}
		if i%2 == 0 {
			return db.DeleteSandbox(ctx, s.ID)
		}
		return nil
	})
	if n := countRows(t, db, "sandboxes", "1"); n != 25 {
		t.Fatalf("%d sandboxes left, want 25", n)
	}
	if n := countRows(t, db, "sandbox_events", "1"); n != 75 {
		t.Fatalf("%d events left, want 75", n)
	}
}

// TestConcurrentHandlesOnOneFile: two DBs on one file (as two processes
// would be) write at the same time; SQLite's busy timeout, not luck, keeps
// them from failing.
func TestConcurrentHandlesOnOneFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "shared.db")
	var dbs [2]*DB
	for i := range dbs {
		db, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		dbs[i] = db
	}
	runConcurrently(t, 50, func(i int) error {
		db := dbs[i%2]
		s := newSandbox(fmt.Sprintf("sb%02d", i))
		if err := db.InsertSandbox(ctx, s); err != nil {
			return err
		}
		s.State = StatePaused
		if err := db.UpdateSandbox(ctx, s); err != nil {
			return err
		}
		_, _, err := db.ListSandboxes(ctx, SandboxFilter{States: []string{StatePaused}, Limit: 100})
		return err
	})
	items, _, err := dbs[0].ListSandboxes(ctx, SandboxFilter{States: []string{StatePaused}})
	if err != nil || len(items) != 50 {
		t.Fatalf("%d paused sandboxes, %v; want 50", len(items), err)
	}
}
