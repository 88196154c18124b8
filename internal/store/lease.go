package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"
)

// Leases let control-plane replicas that share one database take turns: a
// lease is a named row held by one holder until it expires, by the
// database's clock. A holder renews its lease by acquiring it again before it
// expires; a holder that dies stops renewing, and the lease is free once it
// expires. The control plane holds one around every operation on a sandbox
// and around its background duties. Where the dialect allows it, lease
// writes do not wait for the disk (see dialect.lazySync): an operation's
// lease is taken and released around every operation, and it only matters
// while its holder lives.

// MaxLeaseTTL bounds the lifetime of one acquisition of a lease.
const MaxLeaseTTL = 24 * time.Hour

// checkLease validates the arguments of a lease call.
func checkLease(name, holder string, ttl time.Duration) error {
	if name == "" || holder == "" {
		return fmt.Errorf("lease name and holder are required: %w", ErrInvalid)
	}
	if ttl <= 0 || ttl > MaxLeaseTTL {
		return fmt.Errorf("lease time to live %s is not in (0, %s]: %w", ttl, MaxLeaseTTL, ErrInvalid)
	}
	return nil
}

// AcquireLease takes lease name for holder for ttl from now, when it is free
// (never taken, released or expired) or already holder's (which renews it),
// and reports whether holder has it now. Another holder's unexpired lease is
// false, nil: nothing changes.
func (db *DB) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	if err := checkLease(name, holder, ttl); err != nil {
		return false, fmt.Errorf("acquire lease %q: %w", name, err)
	}
	now := db.d.nowNanos()
	var got bool
	err := db.writeAs(ctx, true, func(tx conn) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, `+now+` + ?)
			ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
			WHERE leases.holder = excluded.holder OR leases.expires_at <= `+now,
			name, holder, int64(ttl))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		got = n == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("acquire lease %q for %s: %w", name, holder, err)
	}
	return got, nil
}

// ReleaseLease frees lease name if holder has it; a lease holder does not
// have (anyone else's, expired and taken since, or none) is left alone.
func (db *DB) ReleaseLease(ctx context.Context, name, holder string) error {
	err := db.writeAs(ctx, true, func(tx conn) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM leases WHERE name = ? AND holder = ?`, name, holder)
		return err
	})
	if err != nil {
		return fmt.Errorf("release lease %q of %s: %w", name, holder, err)
	}
	return nil
}

// Lease is the state of one lease.
type Lease struct {
	// Name and Holder name the lease and who took it last.
	Name, Holder string
	// ExpiresAt is when it is free unless renewed (by the database's clock).
	ExpiresAt time.Time
	// Held: it has not expired.
	Held bool
}

// GetLease returns lease name, expired or not; one never taken or released
// is ErrNotFound.
func (db *DB) GetLease(ctx context.Context, name string) (*Lease, error) {
	var (
		l       = Lease{Name: name}
		expires int64
	)
	err := db.pool().QueryRowContext(ctx, `SELECT holder, expires_at, expires_at > `+db.d.nowNanos()+`
		FROM leases WHERE name = ?`, name).Scan(&l.Holder, &expires, &l.Held)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("get lease %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get lease %q: %w", name, err)
	}
	l.ExpiresAt = decTime(expires)
	return &l, nil
}

// DeleteExpiredLeases removes the leases that expired, as their holders
// died, and returns how many went.
func (db *DB) DeleteExpiredLeases(ctx context.Context) (int64, error) {
	var n int64
	err := db.write(ctx, func(tx conn) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM leases WHERE expires_at <= `+db.d.nowNanos())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("delete expired leases: %w", err)
	}
	return n, nil
}

// writeLazy runs write's transactions on one connection of the pool whose
// commits relax makes stop waiting for the disk, and then runs restore on
// it; a connection that cannot be restored is closed, never reused.
func (db *DB) writeLazy(ctx context.Context, relax, restore string, fn func(tx conn) error) error {
	c, err := db.sql.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		// Restore even when ctx ended: the connection goes back to the pool.
		rctx, cancel := context.WithTimeout(context.Background(), busyTimeout)
		defer cancel()
		if _, err := c.ExecContext(rctx, restore); err != nil {
			_ = c.Raw(func(any) error { return driver.ErrBadConn })
		}
		_ = c.Close()
	}()
	if _, err := c.ExecContext(ctx, relax); err != nil {
		return fmt.Errorf("%s: %w", relax, err)
	}
	return db.writeRetried(ctx, c, fn)
}
