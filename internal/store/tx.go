package store

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"time"
)

// maxAttempts bounds how often a write that lost a race is run.
const maxAttempts = 20

// write runs fn in a write transaction and commits it. fn's error aborts
// it. A transaction that lost a race with another one (see isRetryable) is
// run again, so fn must only act on the database and on variables it sets
// afresh on every run.
func (db *DB) write(ctx context.Context, fn func(tx conn) error) error {
	return db.writeAs(ctx, false, fn)
}

// writeAs is write; lazy asks for a commit that does not wait for the disk,
// where the dialect allows it (see dialect.lazySync).
func (db *DB) writeAs(ctx context.Context, lazy bool, fn func(tx conn) error) error {
	if db.d.serialWrites() {
		select {
		case db.wlock <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		defer func() { <-db.wlock }()
	}
	if relax, restore := db.d.lazySync(); lazy && relax != "" {
		return db.writeLazy(ctx, relax, restore, fn)
	}
	return db.writeRetried(ctx, db.sql, fn)
}

// beginner starts transactions: the pool, or one connection of it.
type beginner interface {
	BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error)
}

// writeRetried runs fn in write transactions begun by b until one commits,
// or fails otherwise than by losing a race (see isRetryable).
func (db *DB) writeRetried(ctx context.Context, b beginner, fn func(tx conn) error) error {
	for attempt := 1; ; attempt++ {
		err := db.writeOnce(ctx, b, fn)
		if err == nil || !isRetryable(err) || attempt == maxAttempts {
			return err
		}
		// Back off a random while, growing, so the racers spread out.
		wait := time.Duration(rand.Int64N(int64(time.Millisecond) << min(attempt, 6)))
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// writeOnce is one run of write.
func (db *DB) writeOnce(ctx context.Context, b beginner, fn func(tx conn) error) error {
	tx, err := b.BeginTx(ctx, db.d.writeTx())
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(conn{x: tx, d: db.d, write: true}); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// writeOne runs one statement that must change exactly one row (an UPDATE or
// DELETE by primary key) in a write transaction; no row is ErrNotFound.
func (db *DB) writeOne(ctx context.Context, q string, args ...any) error {
	return db.write(ctx, func(tx conn) error {
		res, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		return nil
	})
}

// read runs fn in a read-only transaction, so that its queries see one
// consistent snapshot.
func (db *DB) read(ctx context.Context, fn func(tx conn) error) error {
	tx, err := db.sql.BeginTx(ctx, db.d.readTx())
	if err != nil {
		return fmt.Errorf("begin read: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	return fn(conn{x: tx, d: db.d})
}
