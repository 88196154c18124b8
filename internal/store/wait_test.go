package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"lelantos.dev/lelantos/internal/store/pgtest"
)

// TestWorthWaiting: a server not reached yet or starting up is waited for;
// a refused login, a missing database and a caller giving up are not.
func TestWorthWaiting(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", fmt.Errorf("dial: %w", errors.New("connect: connection refused")), true},
		{"starting up", &pgconn.PgError{Code: "57P03"}, true},
		{"too many connections", fmt.Errorf("connect: %w", &pgconn.PgError{Code: "53300"}), true},
		{"wrong password", &pgconn.PgError{Code: "28P01"}, false},
		{"no such database", &pgconn.PgError{Code: "3D000"}, false},
		{"caller gave up", fmt.Errorf("ping: %w", context.Canceled), false},
	} {
		if got := worthWaiting(tt.err); got != tt.want {
			t.Errorf("%s: worthWaiting = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestOpenWaitsForTheServer: with WithWait, Open of a PostgreSQL address
// nothing listens on retries for the time given, saying so each time, and
// then fails; without it, it fails at once.
func TestOpenWaitsForTheServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	url := "postgres://lelantos@" + addr + "/lelantos?sslmode=disable&connect_timeout=2"
	ctx := context.Background()
	start := time.Now()
	if _, err := Open(ctx, url); err == nil {
		t.Fatal("Open of a closed port succeeded")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Open without a wait took %v", d)
	}
	attempts := 0
	start = time.Now()
	if _, err := Open(ctx, url, WithWait(3*time.Second, func(error) { attempts++ })); err == nil {
		t.Fatal("Open of a closed port succeeded")
	}
	if d := time.Since(start); d < 2*time.Second || attempts < 2 {
		t.Errorf("Open with a 3 s wait gave up after %v and %d attempts", d, attempts)
	}
}

// TestReplicasMigrateTogether: control-plane replicas starting at once on an
// empty PostgreSQL database all open it; one of them migrates it and the
// others wait for it, rather than applying the same migrations again.
func TestReplicasMigrateTogether(t *testing.T) {
	url := pgtest.NewDatabase(t)
	const replicas = 4
	errs := make(chan error, replicas)
	for range replicas {
		go func() {
			db, err := Open(context.Background(), url)
			if err == nil {
				db.Close()
			}
			errs <- err
		}()
	}
	for range replicas {
		if err := <-errs; err != nil {
			t.Errorf("a replica's Open: %v", err)
		}
	}
}
