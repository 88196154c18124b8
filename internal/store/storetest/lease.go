package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/store"
)

// acquire takes lease name for holder or fails the test; it returns whether
// holder has it.
func acquire(tb testing.TB, db *store.DB, name, holder string, ttl time.Duration) bool {
	tb.Helper()
	ok, err := db.AcquireLease(context.Background(), name, holder, ttl)
	if err != nil {
		tb.Fatalf("AcquireLease(%s, %s): %v", name, holder, err)
	}
	return ok
}

// testLeases: a lease has one holder at a time, who renews it by acquiring it
// again; only the holder's release frees it.
func testLeases(t *testing.T, e *env) {
	ctx := context.Background()
	db := e.open(t)
	if !acquire(t, db, "op/sbx1", "replica-a", time.Minute) {
		t.Fatal("a free lease was refused")
	}
	first, err := db.GetLease(ctx, "op/sbx1")
	if err != nil || first.Holder != "replica-a" || !first.Held || time.Until(first.ExpiresAt) <= 0 {
		t.Fatalf("GetLease = %+v, %v", first, err)
	}
	if acquire(t, db, "op/sbx1", "replica-b", time.Minute) {
		t.Fatal("a held lease went to another holder")
	}
	if !acquire(t, db, "op/sbx2", "replica-b", time.Minute) {
		t.Fatal("another lease was refused")
	}
	time.Sleep(5 * time.Millisecond)
	if !acquire(t, db, "op/sbx1", "replica-a", 2*time.Minute) {
		t.Fatal("the holder could not renew its lease")
	}
	if renewed, _ := db.GetLease(ctx, "op/sbx1"); renewed == nil || !renewed.ExpiresAt.After(first.ExpiresAt) {
		t.Fatalf("a renewal did not move the expiry: %+v, then %+v", first, renewed)
	}
	// Someone else's release changes nothing.
	if err := db.ReleaseLease(ctx, "op/sbx1", "replica-b"); err != nil {
		t.Fatal(err)
	}
	if acquire(t, db, "op/sbx1", "replica-b", time.Minute) {
		t.Fatal("another holder's release freed the lease")
	}
	if err := db.ReleaseLease(ctx, "op/sbx1", "replica-a"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetLease(ctx, "op/sbx1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a released lease: %v, want ErrNotFound", err)
	}
	if !acquire(t, db, "op/sbx1", "replica-b", time.Minute) {
		t.Fatal("a released lease was refused")
	}
	wantErr(t, "release of a lease never taken", db.ReleaseLease(ctx, "nothing", "replica-a"), nil)
	for _, bad := range []struct {
		name, holder string
		ttl          time.Duration
	}{{"", "a", time.Second}, {"x", "", time.Second}, {"x", "a", 0}, {"x", "a", -time.Second}, {"x", "a", store.MaxLeaseTTL + 1}} {
		if _, err := db.AcquireLease(ctx, bad.name, bad.holder, bad.ttl); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("AcquireLease(%q, %q, %s) = %v, want ErrInvalid", bad.name, bad.holder, bad.ttl, err)
		}
	}
}

// testLeaseExpiry: a lease its holder stopped renewing is free once it
// expires, and DeleteExpiredLeases removes only expired ones.
func testLeaseExpiry(t *testing.T, e *env) {
	ctx := context.Background()
	db := e.open(t)
	const ttl = 300 * time.Millisecond
	taken := time.Now()
	if !acquire(t, db, "background", "dead-replica", ttl) || !acquire(t, db, "op/live", "live-replica", time.Hour) {
		t.Fatal("free leases were refused")
	}
	if acquire(t, db, "background", "replica-b", time.Minute) {
		t.Fatal("an unexpired lease went to another holder")
	}
	for !acquire(t, db, "background", "replica-b", time.Minute) {
		if time.Since(taken) > ttl+5*time.Second {
			t.Fatalf("the lease is still held %s after it was taken for %s", time.Since(taken), ttl)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if since := time.Since(taken); since < ttl-10*time.Millisecond {
		t.Fatalf("the lease was free after %s, before its %s were up", since, ttl)
	}
	if l, err := db.GetLease(ctx, "background"); err != nil || l.Holder != "replica-b" {
		t.Fatalf("after the takeover: %+v, %v", l, err)
	}
	if !acquire(t, db, "op/gone", "dead-replica", 50*time.Millisecond) {
		t.Fatal("a free lease was refused")
	}
	time.Sleep(100 * time.Millisecond)
	if l, err := db.GetLease(ctx, "op/gone"); err != nil || l.Held {
		t.Fatalf("an expired lease: %+v, %v; want one not held", l, err)
	}
	n, err := db.DeleteExpiredLeases(ctx)
	if err != nil || n != 1 {
		t.Fatalf("DeleteExpiredLeases = %d, %v; want 1", n, err)
	}
	if _, err := db.GetLease(ctx, "op/gone"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the expired lease is still there: %v", err)
	}
	for _, name := range []string{"background", "op/live"} {
		if l, err := db.GetLease(ctx, name); err != nil || !l.Held {
			t.Errorf("lease %s after the sweep: %+v, %v", name, l, err)
		}
	}
}

// testLeaseRace: holders on two handles race for one free lease; exactly one
// gets it.
func testLeaseRace(t *testing.T, e *env) {
	loc := e.b.NewLocation(t)
	dbs := [2]*store.DB{e.openAt(t, loc), e.openAt(t, loc)}
	for round := range 5 {
		name := fmt.Sprintf("op/race-%d", round)
		var won atomic.Int64
		runConcurrently(t, 16, func(i int) error {
			ok, err := dbs[i%2].AcquireLease(context.Background(), name, fmt.Sprintf("replica-%d", i), time.Minute)
			if ok {
				won.Add(1)
			}
			return err
		})
		if won.Load() != 1 {
			t.Fatalf("round %d: %d holders got the lease, want 1", round, won.Load())
		}
	}
}
