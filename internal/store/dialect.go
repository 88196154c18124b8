package store

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// dialect is what differs between the SQL databases the store runs on. The
// statements are written once, with ? placeholders, in the SQL both SQLite
// and PostgreSQL accept; a dialect rewrites the placeholders, says how
// transactions begin and which failures are worth a rerun, and brings its
// own migrations (the same schema in each database's types).
type dialect interface {
	// name is "sqlite" or "postgres", for messages.
	name() string
	// rebind rewrites the ? and ?N placeholders of q for the driver.
	rebind(q string) string
	// migrations are the dialect's schema steps, in a directory of fsys.
	migrations() (fsys fs.FS, dir string)
	// schemaTable creates schema_migrations when it does not exist.
	schemaTable() string
	// lockSchema keeps another process from migrating the same database
	// until unlock: it is taken on c before the migrating transaction
	// begins there, so that the transaction's snapshot holds what an
	// earlier migrator committed.
	lockSchema(ctx context.Context, c *sql.Conn) (unlock func(), err error)
	// writeTx and readTx are the options of write and read transactions.
	writeTx() *sql.TxOptions
	readTx() *sql.TxOptions
	// serialWrites: this process runs one write transaction at a time (a
	// database with one writer, where waiting in process is cheaper than
	// waiting in the database).
	serialWrites() bool
	// insertOrder is the column that orders the rows of the append-only
	// tables (metrics, events) by insertion.
	insertOrder() string
	// rowKey is the cheapest column to join a sandbox's row by.
	rowKey() string
	// nowNanos is an SQL expression: the database's clock in Unix
	// nanoseconds (leases are timed by it, so replicas with skewed clocks
	// agree).
	nowNanos() string
	// lazySync returns the statements that make a connection's commits
	// stop waiting for the disk and wait again, or "" when every commit
	// must wait. Only leases commit lazily: a lease lost in a crash of the
	// machine was held by processes that died with it, which holds where
	// every process sharing the database runs on one machine (SQLite), not
	// where they share a server (PostgreSQL).
	lazySync() (relax, restore string)
	// optimize runs when the store closes (best effort).
	optimize(db *sql.DB)
}

// rebindDollar rewrites ? placeholders as $1, $2, ... in order and ?N as $N,
// leaving quoted literals, quoted identifiers and comments alone.
func rebindDollar(q string) string {
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(q) && q[j] != c {
				j++
			}
			b.WriteString(q[i:min(j+1, len(q))])
			i = j
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			j := strings.IndexByte(q[i:], '\n')
			if j < 0 {
				j = len(q) - i
			}
			b.WriteString(q[i : i+j])
			i += j - 1
		case c == '?':
			j := i + 1
			for j < len(q) && q[j] >= '0' && q[j] <= '9' {
				j++
			}
			b.WriteByte('$')
			if j > i+1 {
				b.WriteString(q[i+1 : j])
			} else {
				n++
				b.WriteString(strconv.Itoa(n))
			}
			i = j - 1
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// The failures the store tells apart, whichever database reported them.

// sqliteCode returns the extended SQLite result code of err, or 0.
func sqliteCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	return 0
}

// pgCode returns the SQLSTATE of a PostgreSQL error, or "".
func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// isUniqueViolation reports a PRIMARY KEY or UNIQUE constraint failure.
func isUniqueViolation(err error) bool {
	if err == nil {
		return false
	}
	c := sqliteCode(err)
	return c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || c == sqlite3.SQLITE_CONSTRAINT_UNIQUE ||
		pgCode(err) == "23505"
}

// isForeignKeyViolation reports a FOREIGN KEY constraint failure.
func isForeignKeyViolation(err error) bool {
	if err == nil {
		return false
	}
	return sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY || pgCode(err) == "23503"
}

// isRetryable reports a transaction that lost a race with another one
// (PostgreSQL's serialization failure or deadlock): run again, it sees the
// winner's result.
func isRetryable(err error) bool {
	c := pgCode(err)
	return c == "40001" || c == "40P01"
}
