package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"time"

	// The database/sql driver "sqlite".
	_ "modernc.org/sqlite"
)

// sqliteMigrations is the SQLite schema history, one file per version,
// named NNNN_description.sql. Never edit a released file: add the next one.
//
//go:embed migrations/sqlite/*.sql
var sqliteMigrations embed.FS

// busyTimeout is how long a statement waits for a lock held by another
// connection (another DB or process on the same file) before SQLITE_BUSY.
const busyTimeout = 10 * time.Second

// sqliteDialect is SQLite through modernc.org/sqlite.
type sqliteDialect struct{}

func (sqliteDialect) name() string           { return "sqlite" }
func (sqliteDialect) rebind(q string) string { return q }
func (sqliteDialect) migrations() (fs.FS, string) {
	return sqliteMigrations, "migrations/sqlite"
}

func (sqliteDialect) schemaTable() string {
	return `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER NOT NULL PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL
	) STRICT`
}

// lockSchema: the migration's BEGIN IMMEDIATE already excludes every other
// writer of the file, and its snapshot starts there.
func (sqliteDialect) lockSchema(context.Context, *sql.Conn) (func(), error) { return func() {}, nil }

// writeTx: the DSN makes every transaction BEGIN IMMEDIATE.
func (sqliteDialect) writeTx() *sql.TxOptions { return nil }
func (sqliteDialect) readTx() *sql.TxOptions  { return &sql.TxOptions{ReadOnly: true} }
func (sqliteDialect) serialWrites() bool      { return true }
func (sqliteDialect) insertOrder() string     { return "rowid" }
func (sqliteDialect) rowKey() string          { return "rowid" }

// nowNanos has millisecond precision, plenty for leases.
func (sqliteDialect) nowNanos() string {
	return `CAST(unixepoch('subsec') * 1000000000 AS INTEGER)`
}

// lazySync: in WAL mode, synchronous=NORMAL commits to the log without
// syncing it; the next FULL commit syncs the log, theirs with it.
func (sqliteDialect) lazySync() (string, string) {
	return "PRAGMA synchronous = NORMAL", "PRAGMA synchronous = FULL"
}

// optimize lets SQLite refresh its query planner statistics; a failure only
// costs planner quality.
func (sqliteDialect) optimize(db *sql.DB) { _, _ = db.Exec("PRAGMA optimize") }

// openSQLite opens (creating it and its parent directories when missing) the
// SQLite database at path.
func openSQLite(ctx context.Context, path string) (*DB, error) {
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
	sdb, err := sql.Open("sqlite", sqliteDSN(abs))
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
	if err := checkPragmas(ctx, sdb); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("open store %s: %w", abs, err)
	}
	return &DB{sql: sdb, d: sqliteDialect{}, loc: abs, wlock: make(chan struct{}, 1)}, nil
}

// sqliteDSN builds the modernc.org/sqlite data source name for an absolute
// path. The pragmas run on every new connection of the pool.
func sqliteDSN(abs string) string {
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
func checkPragmas(ctx context.Context, sdb *sql.DB) error {
	var mode string
	if err := sdb.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("read journal_mode: %w", err)
	}
	if mode != "wal" {
		return fmt.Errorf("journal_mode is %q, want wal", mode)
	}
	var fk int
	if err := sdb.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
		return fmt.Errorf("read foreign_keys: %w", err)
	}
	if fk != 1 {
		return errors.New("foreign keys are not enforced")
	}
	return nil
}
