// Package store is the control plane's durable state: teams and their
// quotas, sandboxes and their metadata, API keys, templates and template
// builds, metrics samples and lifecycle events, kept in one SQLite file (pure
// Go via modernc.org/sqlite, no cgo). Every key, sandbox, template and build
// belongs to a team; quota checks run in the transaction that admits a
// sandbox or a build, so concurrent admissions cannot both take a last slot.
//
// Durability: every method that writes commits its transaction before it
// returns, and the database runs in WAL mode with synchronous=FULL, so a
// write that returned nil survives a process crash or a power loss. That is
// the restart guarantee the control plane relies on when it acknowledges a
// request only after the store call returned.
//
// Concurrency: a DB is safe for concurrent use. Writes from one DB are
// serialized in process (so they never fail with SQLITE_BUSY against each
// other) and start with BEGIN IMMEDIATE; reads run concurrently with writes
// thanks to WAL. Several DBs (or processes) on the same file are tolerated:
// they wait for each other up to a busy timeout.
//
// Times are stored as UTC Unix nanoseconds; the zero time.Time is stored as
// 0 and read back as the zero time.Time (so 1970-01-01T00:00:00Z exactly
// cannot be told from "unset"). Times the int64 nanosecond range cannot hold
// (before 1678 or after 2262) are refused with ErrInvalid. Times read back
// are in UTC.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Sentinel errors. Methods wrap them with the operation and the key, so test
// them with errors.Is.
var (
	// ErrNotFound: the addressed record does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists: a record with the same unique key (ID, API key hash,
	// template alias) already exists.
	ErrExists = errors.New("already exists")
	// ErrConflict: UpdateSandbox was given a Version that is no longer the
	// stored one (someone else updated the sandbox first). Re-read and retry.
	ErrConflict = errors.New("version conflict")
	// ErrInvalidCursor: SandboxFilter.Cursor is not a cursor this package
	// produced.
	ErrInvalidCursor = errors.New("invalid cursor")
	// ErrInvalid: an argument is unusable (empty ID, unknown state, negative
	// limit, time out of range, malformed JSON, ...).
	ErrInvalid = errors.New("invalid argument")
	// ErrSchemaTooNew: the file was migrated by a newer build of Lelantos
	// than this one; Open refuses it rather than risk misreading it.
	ErrSchemaTooNew = errors.New("database schema is newer than this build")
	// ErrQuota: an admission would take a team over one of its quotas; the
	// error is a *QuotaError.
	ErrQuota = errors.New("quota exceeded")
)

// busyTimeout is how long a statement waits for a lock held by another
// connection (another DB or process on the same file) before SQLITE_BUSY.
const busyTimeout = 10 * time.Second

// DB is an open store. Create it with Open and release it with Close.
type DB struct {
	sql  *sql.DB
	path string
	// wlock is a one-slot semaphore that serializes write transactions of
	// this DB, so concurrent writers queue here (honouring their contexts)
	// instead of spinning in SQLite's busy handler.
	wlock chan struct{}
	// now is the clock used for CreatedAt/UpdatedAt/RevokedAt defaults.
	now func() time.Time
}

// Open opens (creating it and its parent directories when missing) the
// SQLite database at path and migrates it to the newest schema this build
// knows. A database whose schema is newer fails with ErrSchemaTooNew.
func Open(ctx context.Context, path string) (*DB, error) {
	if path == "" {
		return nil, fmt.Errorf("open store: empty path: %w", ErrInvalid)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("open store %s: create parent directory: %w", abs, err)
	}
	// The file holds access tokens: create it private to the owner. SQLite
	// gives its -wal and -shm files the database file's permissions.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", abs, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("open store %s: %w", abs, err)
	}
	sdb, err := sql.Open("sqlite", dsn(abs))
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", abs, err)
	}
	// A handful of connections: readers run in parallel under WAL, and the
	// one writer of the moment (see wlock) always finds a connection.
	n := max(4, runtime.NumCPU())
	sdb.SetMaxOpenConns(n)
	sdb.SetMaxIdleConns(n)
	sdb.SetConnMaxLifetime(0)
	sdb.SetConnMaxIdleTime(0)

	db := &DB{sql: sdb, path: abs, wlock: make(chan struct{}, 1), now: time.Now}
	if err := db.checkPragmas(ctx); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("open store %s: %w", abs, err)
	}
	if err := db.migrate(ctx); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("open store %s: %w", abs, err)
	}
	return db, nil
}

// dsn builds the modernc.org/sqlite data source name for an absolute path.
// The pragmas run on every new connection of the pool.
func dsn(abs string) string {
	u := url.URL{Scheme: "file", Path: abs}
	q := url.Values{}
	q.Add("_txlock", "immediate")
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(1)")
	return u.String() + "?" + q.Encode()
}

// checkPragmas verifies that the connection settings took effect; WAL in
// particular silently stays off on file systems that cannot support it.
func (db *DB) checkPragmas(ctx context.Context) error {
	var mode string
	if err := db.sql.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("read journal_mode: %w", err)
	}
	if mode != "wal" {
		return fmt.Errorf("journal_mode is %q, want wal", mode)
	}
	var fk int
	if err := db.sql.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
		return fmt.Errorf("read foreign_keys: %w", err)
	}
	if fk != 1 {
		return errors.New("foreign keys are not enforced")
	}
	return nil
}

// Path returns the absolute path of the database file.
func (db *DB) Path() string { return db.path }

// Close lets SQLite refresh its query planner statistics, then closes the
// database. Every write already returned has been committed; Close must not
// be called while other calls are in flight.
func (db *DB) Close() error {
	// Best effort: a failure here only costs planner quality.
	_, _ = db.sql.Exec("PRAGMA optimize")
	if err := db.sql.Close(); err != nil {
		return fmt.Errorf("close store %s: %w", db.path, err)
	}
	return nil
}

// write runs fn in a write transaction (BEGIN IMMEDIATE) and commits it,
// holding the DB's write lock for the duration. fn's error aborts it.
func (db *DB) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	select {
	case db.wlock <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-db.wlock }()

	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
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
	return db.write(ctx, func(tx *sql.Tx) error {
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
func (db *DB) read(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.sql.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("begin read: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	return fn(tx)
}

// encTime converts t to the stored form: 0 for the zero time, else UTC Unix
// nanoseconds.
func encTime(t time.Time) (int64, error) {
	if t.IsZero() {
		return 0, nil
	}
	// The bounds of the times that fit in int64 Unix nanoseconds.
	if t.Before(time.Unix(0, math.MinInt64+1)) || t.After(time.Unix(0, math.MaxInt64)) {
		return 0, fmt.Errorf("time %s out of range: %w", t.Format(time.RFC3339Nano), ErrInvalid)
	}
	return t.UnixNano(), nil
}

// decTime is the inverse of encTime.
func decTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// encTimePtr stores nil as NULL.
func encTimePtr(t *time.Time) (any, error) {
	if t == nil {
		return nil, nil
	}
	return encTime(*t)
}

// decTimePtr reads a nullable time column.
func decTimePtr(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	t := decTime(n.Int64)
	return &t
}

// sqliteCode returns the extended SQLite result code of err, or 0.
func sqliteCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	return 0
}

// isUniqueViolation reports a PRIMARY KEY or UNIQUE constraint failure.
func isUniqueViolation(err error) bool {
	c := sqliteCode(err)
	return c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || c == sqlite3.SQLITE_CONSTRAINT_UNIQUE
}

// isForeignKeyViolation reports a FOREIGN KEY constraint failure.
func isForeignKeyViolation(err error) bool {
	return sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}

// checkLimit rejects negative limits; 0 means no limit.
func checkLimit(limit int) error {
	if limit < 0 {
		return fmt.Errorf("limit %d is negative: %w", limit, ErrInvalid)
	}
	return nil
}

// sqlLimit turns a checked limit into a SQLite LIMIT value (-1 = none).
func sqlLimit(limit int) int64 {
	if limit == 0 {
		return -1
	}
	return int64(limit)
}
