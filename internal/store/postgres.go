package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"net/url"
	"runtime"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// postgresMigrations is the PostgreSQL schema history: the same versions as
// the SQLite one, each making the same tables, columns, keys and indexes in
// PostgreSQL's types (BIGINT for integers and times, BOOLEAN, DOUBLE
// PRECISION; text compared byte by byte, as SQLite does, whatever the
// database's locale).
//
//go:embed migrations/postgres/*.sql
var postgresMigrations embed.FS

// migrationLockKey is the advisory lock the migrating transaction holds
// ("lelantos" in ASCII).
const migrationLockKey = 0x6c656c616e746f73

// postgresDialect is PostgreSQL through pgx's database/sql driver.
type postgresDialect struct{}

func (postgresDialect) name() string           { return "postgres" }
func (postgresDialect) rebind(q string) string { return rebindDollar(q) }
func (postgresDialect) migrations() (fs.FS, string) {
	return postgresMigrations, "migrations/postgres"
}

func (postgresDialect) schemaTable() string {
	return `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    BIGINT NOT NULL PRIMARY KEY,
		name       TEXT   NOT NULL,
		applied_at BIGINT NOT NULL
	)`
}

// lockMigrations takes a transaction-scoped advisory lock, so that replicas
// starting together migrate one after the other.
func (postgresDialect) lockMigrations(ctx context.Context, tx conn) error {
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(?)`, int64(migrationLockKey)); err != nil {
		return fmt.Errorf("lock the schema: %w", err)
	}
	return nil
}

// writeTx is serializable: a transaction that could have seen a result
// different from running alone fails with a serialization error, and write
// runs it again.
func (postgresDialect) writeTx() *sql.TxOptions {
	return &sql.TxOptions{Isolation: sql.LevelSerializable}
}

func (postgresDialect) readTx() *sql.TxOptions {
	return &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}
}

func (postgresDialect) serialWrites() bool  { return false }
func (postgresDialect) insertOrder() string { return "seq" }
func (postgresDialect) rowKey() string      { return "id" }

func (postgresDialect) nowNanos() string {
	return `CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000000 AS BIGINT)`
}

func (postgresDialect) optimize(*sql.DB) {}

// lazySync: replicas on other machines rely on every lease the server
// granted, so a lease's commit waits for the disk like any other.
func (postgresDialect) lazySync() (string, string) { return "", "" }

// openPostgres connects to the PostgreSQL database at rawURL.
func openPostgres(ctx context.Context, rawURL string) (*DB, error) {
	loc := redactURL(rawURL)
	cfg, err := pgx.ParseConfig(rawURL)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w: %w", loc, ErrInvalid, err)
	}
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "lelantos"
	}
	sdb := stdlib.OpenDB(*cfg)
	n := max(8, 4*runtime.NumCPU())
	sdb.SetMaxOpenConns(n)
	sdb.SetMaxIdleConns(n)
	sdb.SetConnMaxIdleTime(5 * time.Minute)
	if err := sdb.PingContext(ctx); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("open store %s: %w", loc, err)
	}
	return &DB{sql: sdb, d: postgresDialect{}, loc: loc, wlock: make(chan struct{}, 1)}, nil
}

// redactURL is rawURL without its password, for messages.
func redactURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "postgres://(unparsable URL)"
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}
