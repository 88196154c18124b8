package storetest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/store"
)

// testConcurrentCompareAndSwap: 50 callers increment one counter with
// read-modify-write; only ErrConflict may happen, and no increment is lost.
func testConcurrentCompareAndSwap(t *testing.T, e *env) {
	const callers, increments = 50, 4
	ctx := context.Background()
	db := e.open(t)
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
				if errors.Is(err, store.ErrConflict) {
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

// testConcurrentMixedCallers: 50 callers use every kind of call at once;
// none may fail (in particular not with SQLITE_BUSY).
func testConcurrentMixedCallers(t *testing.T, e *env) {
	ctx := context.Background()
	db := e.open(t)
	if err := db.InsertAPIKey(ctx, &store.APIKey{ID: "k", TeamID: store.DefaultTeamID, Hash: "h"}); err != nil {
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
			if err := db.AppendEvent(ctx, s.ID, store.Event{Line: "step"}); err != nil {
				return err
			}
			if err := db.InsertMetric(ctx, s.ID, store.Metric{CPUCount: j}); err != nil {
				return err
			}
			if err := db.TouchAPIKey(ctx, "k", time.Now()); err != nil {
				return err
			}
			items, _, err := db.ListSandboxes(ctx, store.SandboxFilter{
				Metadata: map[string]string{"worker": strconv.Itoa(i)}, Limit: 10})
			if err != nil {
				return err
			}
			if len(items) != 1 || items[0].Version != int64(j)+2 {
				return fmt.Errorf("listed %d items, want own sandbox at version %d", len(items), j+2)
			}
		}
		if _, err := db.ListDue(ctx, store.DueFilter{State: store.StateRunning, Before: time.Now(), Limit: 100}); err != nil {
			return err
		}
		if i%2 == 0 {
			return db.DeleteSandbox(ctx, s.ID)
		}
		return nil
	})
	left, _, err := db.ListSandboxes(ctx, store.SandboxFilter{})
	if err != nil || len(left) != 25 {
		t.Fatalf("%d sandboxes left, %v; want 25", len(left), err)
	}
	events := 0
	for i := range 50 {
		ev, err := db.ListEvents(ctx, fmt.Sprintf("sb%02d", i), time.Time{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		events += len(ev)
	}
	if events != 75 {
		t.Fatalf("%d events left, want 75", events)
	}
}

// testConcurrentHandlesOnOneDatabase: two DBs on one database (as two
// processes or control-plane replicas would be) write at the same time; the
// database's locking (SQLite's busy timeout, PostgreSQL's serializable
// transactions rerun), not luck, keeps them from failing.
func testConcurrentHandlesOnOneDatabase(t *testing.T, e *env) {
	ctx := context.Background()
	loc := e.b.NewLocation(t)
	dbs := [2]*store.DB{e.openAt(t, loc), e.openAt(t, loc)}
	runConcurrently(t, 50, func(i int) error {
		db := dbs[i%2]
		s := newSandbox(fmt.Sprintf("sb%02d", i))
		if err := db.InsertSandbox(ctx, s); err != nil {
			return err
		}
		s.State = store.StatePaused
		if err := db.UpdateSandbox(ctx, s); err != nil {
			return err
		}
		_, _, err := db.ListSandboxes(ctx, store.SandboxFilter{States: []string{store.StatePaused}, Limit: 100})
		return err
	})
	items, _, err := dbs[0].ListSandboxes(ctx, store.SandboxFilter{States: []string{store.StatePaused}})
	if err != nil || len(items) != 50 {
		t.Fatalf("%d paused sandboxes, %v; want 50", len(items), err)
	}
}
