// Package store is the control plane's durable state: teams and their
// quotas, sandboxes and their metadata, API keys, templates and template
// builds, snapshots, volumes, metrics samples and lifecycle events, and the
// leases that serialize work across control-plane replicas. It keeps them in
// SQLite (one file, pure Go via modernc.org/sqlite, no cgo; the embedded
// default) or in PostgreSQL (through pgx), with the same statements, the same
// schema in each database's types, and the same behaviour: one conformance
// suite (package storetest) runs against both. Every key, sandbox, template
// and build belongs to a team; quota checks run in the transaction that
// admits a sandbox or a build, so concurrent admissions cannot both take a
// last slot.
//
// Durability: every method that writes commits its transaction before it
// returns. SQLite runs in WAL mode with synchronous=FULL; PostgreSQL commits
// synchronously unless its operator says otherwise. A write that returned
// nil survives a crash of the process, which is the restart guarantee the
// control plane relies on when it acknowledges a request only after the
// store call returned.
//
// Concurrency: a DB is safe for concurrent use, and several DBs (processes,
// control-plane replicas) may share one database. With SQLite, writes from
// one DB are serialized in process and start with BEGIN IMMEDIATE, reads run
// concurrently with writes thanks to WAL, and DBs on one file wait for each
// other up to a busy timeout. With PostgreSQL, writes are serializable
// transactions, rerun when the database reports that they lost a race with
// another (so a quota check and the insert it admits act as one step across
// replicas), and reads see one snapshot.
//
// Times are stored as UTC Unix nanoseconds; the zero time.Time is stored as
// 0 and read back as the zero time.Time (so 1970-01-01T00:00:00Z exactly
// cannot be told from "unset"). Times the int64 nanosecond range cannot hold
// (before 1678 or after 2262) are refused with ErrInvalid. Times read back
// are in UTC. Text is UTF-8 without NUL bytes (see ErrInvalid).
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
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
	// limit, time out of range, malformed JSON, text to store that is not
	// UTF-8 or holds a NUL byte, ...).
	ErrInvalid = errors.New("invalid argument")
	// ErrText: a string to store is not UTF-8 or holds a NUL byte, which
	// PostgreSQL cannot store (the store refuses it on SQLite too). It wraps
	// ErrInvalid.
	ErrText = fmt.Errorf("text is not UTF-8 without NUL bytes: %w", ErrInvalid)
	// ErrSchemaTooNew: the database was migrated by a newer build of
	// Lelantos than this one; Open refuses it rather than risk misreading it.
	ErrSchemaTooNew = errors.New("database schema is newer than this build")
	// ErrQuota: an admission would take a team over one of its quotas; the
	// error is a *QuotaError.
	ErrQuota = errors.New("quota exceeded")
)

// DB is an open store. Create it with Open and release it with Close.
type DB struct {
	sql *sql.DB
	d   dialect
	// loc is where the database is: a file's absolute path, or a
	// PostgreSQL URL without its password.
	loc string
	// wlock is a one-slot semaphore that serializes write transactions of
	// this DB where the dialect wants it, so concurrent writers queue here
	// (honouring their contexts) instead of spinning in SQLite's busy
	// handler.
	wlock chan struct{}
	// now is the clock used for CreatedAt/UpdatedAt/RevokedAt defaults.
	now func() time.Time
}

// Option changes how Open opens a store.
type Option func(*options)

// options are the settings the Options make.
type options struct {
	clock         func() time.Time
	schemaVersion int
	// wait is how long Open waits for a PostgreSQL server that does not
	// answer yet; waiting is called after each failed attempt.
	wait    time.Duration
	waiting func(error)
}

// WithWait makes Open wait up to d for a PostgreSQL server that cannot be
// reached yet or is starting up (as when the database and the server start
// together), calling waiting, when not nil, after each failed attempt. A
// server that refuses the login or the database fails at once.
func WithWait(d time.Duration, waiting func(error)) Option {
	return func(o *options) { o.wait, o.waiting = d, waiting }
}

// WithClock makes the store take "now" (the default of creation times,
// revocations, samples) from clock instead of time.Now. Leases are timed by
// the database's clock regardless.
func WithClock(clock func() time.Time) Option {
	return func(o *options) { o.clock = clock }
}

// WithSchemaVersion migrates the database only up to schema version v, as
// an older build would have left it (a staged upgrade; tests of the
// migrations). A database already past v is ErrSchemaTooNew.
func WithSchemaVersion(v int) Option {
	return func(o *options) { o.schemaVersion = v }
}

// IsPostgresURL reports whether location names a PostgreSQL database
// (postgres:// or postgresql://) rather than a SQLite file.
func IsPostgresURL(location string) bool {
	return strings.HasPrefix(location, "postgres://") || strings.HasPrefix(location, "postgresql://")
}

// Open opens the store at location and migrates it to the newest schema this
// build knows (or the version WithSchemaVersion names). location is a
// PostgreSQL URL (postgres://user:password@host:port/database?sslmode=...,
// or host=/socket/dir for a unix socket), whose database must exist; or else
// the path of a SQLite file, created with its parent directories when
// missing. A database whose schema is newer fails with ErrSchemaTooNew.
func Open(ctx context.Context, location string, opts ...Option) (*DB, error) {
	o := options{clock: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	var (
		db  *DB
		err error
	)
	if IsPostgresURL(location) {
		db, err = openPostgres(ctx, location, o.wait, o.waiting)
	} else {
		db, err = openSQLite(ctx, location)
	}
	if err != nil {
		return nil, err
	}
	db.now = o.clock
	if err := db.migrate(ctx, o.schemaVersion); err != nil {
		db.sql.Close()
		return nil, fmt.Errorf("open store %s: %w", db.loc, err)
	}
	return db, nil
}

// Path returns where the database is: the absolute path of a SQLite file,
// or the PostgreSQL URL without its password.
func (db *DB) Path() string { return db.loc }

// Dialect names the database the store runs on: "sqlite" or "postgres".
func (db *DB) Dialect() string { return db.d.name() }

// Close lets the database refresh its planner statistics where that is
// cheap, then closes the store. Every write already returned has been
// committed; Close must not be called while other calls are in flight.
func (db *DB) Close() error {
	db.d.optimize(db.sql)
	if err := db.sql.Close(); err != nil {
		return fmt.Errorf("close store %s: %w", db.loc, err)
	}
	return nil
}

// pool is a conn on the connection pool, for single statements (one
// statement reads one consistent snapshot).
func (db *DB) pool() conn { return conn{x: db.sql, d: db.d} }

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

// checkLimit rejects negative limits; 0 means no limit.
func checkLimit(limit int) error {
	if limit < 0 {
		return fmt.Errorf("limit %d is negative: %w", limit, ErrInvalid)
	}
	return nil
}
