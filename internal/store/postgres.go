package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"runtime"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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

// migrationLockKey is the advisory lock a migrating process holds
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

// lockSchema takes a session-level advisory lock on c, so that replicas
// starting together migrate one after the other. It must come before the
// migrating transaction: a serializable transaction's snapshot is taken at
// its first statement, so a lock taken inside it would let a waiter read the
// schema version from before the migration it waited for.
func (postgresDialect) lockSchema(ctx context.Context, c *sql.Conn) (func(), error) {
	if _, err := c.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, int64(migrationLockKey)); err != nil {
		return nil, fmt.Errorf("lock the schema: %w", err)
	}
	return func() {
		_, _ = c.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(migrationLockKey))
	}, nil
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
func openPostgres(ctx context.Context, rawURL string, wait time.Duration, waiting func(error)) (*DB, error) {
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
	if err := pingUntil(ctx, sdb, wait, waiting); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("open store %s: %w", loc, err)
	}
	return &DB{sql: sdb, d: postgresDialect{}, loc: loc, wlock: make(chan struct{}, 1)}, nil
}

// pingUntil pings db until it answers, it fails in a way waiting cannot
// cure (worthWaiting), or wait has passed.
func pingUntil(ctx context.Context, db *sql.DB, wait time.Duration, waiting func(error)) error {
	deadline := time.Now().Add(wait)
	for {
		err := db.PingContext(ctx)
		if err == nil || !worthWaiting(err) || time.Now().Add(time.Second).After(deadline) {
			return err
		}
		if waiting != nil {
			waiting(err)
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Second):
		}
	}
}

// worthWaiting reports whether a failed connection may succeed later: the
// server was not reached, or it answered that it is starting up, shutting
// down or out of connections; not a refused login or a missing database.
func worthWaiting(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "57P03", "57P01", "53300": // cannot_connect_now, admin_shutdown, too_many_connections
			return true
		}
		return false
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
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
