package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"unicode/utf8"
)

// execer is a *sql.DB or a *sql.Tx.
type execer interface {
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
	PrepareContext(ctx context.Context, q string) (*sql.Stmt, error)
}

// conn runs the store's statements (written with ? placeholders) on the pool
// or in a transaction, in the database's dialect.
//
// It also holds the store's rule for text: every string stored is UTF-8
// without NUL bytes, since PostgreSQL cannot store others. A write given
// another string fails with ErrInvalid; a read given one matches nothing (it
// is passed as NULL, equal to no value), so that a lookup of such a name is
// "not found" on every database.
type conn struct {
	x     execer
	d     dialect
	write bool
}

// badText reports a string a database cannot store as text.
func badText(s string) bool { return !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 }

// args checks the string arguments of a statement (see conn).
func (c conn) args(args []any) ([]any, error) {
	var out []any
	for i, a := range args {
		s, ok := a.(string)
		if !ok || !badText(s) {
			continue
		}
		if c.write {
			return nil, fmt.Errorf("a text of %d bytes: %w", len(s), ErrText)
		}
		if out == nil {
			out = append([]any(nil), args...)
		}
		out[i] = nil
	}
	if out == nil {
		return args, nil
	}
	return out, nil
}

// ExecContext runs a statement that returns no rows.
func (c conn) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	args, err := c.args(args)
	if err != nil {
		return nil, err
	}
	return c.x.ExecContext(ctx, c.d.rebind(q), args...)
}

// QueryContext runs a query.
func (c conn) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	args, err := c.args(args)
	if err != nil {
		return nil, err
	}
	return c.x.QueryContext(ctx, c.d.rebind(q), args...)
}

// row is the result of QueryRowContext: a *sql.Row, or the error that kept
// the query from running.
type row struct {
	r   *sql.Row
	err error
}

// Scan copies the row's columns into dest; no row is sql.ErrNoRows.
func (r row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	return r.r.Scan(dest...)
}

// QueryRowContext runs a query expected to return at most one row.
func (c conn) QueryRowContext(ctx context.Context, q string, args ...any) row {
	args, err := c.args(args)
	if err != nil {
		return row{err: err}
	}
	return row{r: c.x.QueryRowContext(ctx, c.d.rebind(q), args...)}
}

// stmt is a prepared statement of a conn.
type stmt struct {
	s *sql.Stmt
	c conn
}

// PrepareContext prepares a statement run several times.
func (c conn) PrepareContext(ctx context.Context, q string) (*stmt, error) {
	s, err := c.x.PrepareContext(ctx, c.d.rebind(q))
	if err != nil {
		return nil, err
	}
	return &stmt{s: s, c: c}, nil
}

// ExecContext runs the prepared statement with args.
func (s *stmt) ExecContext(ctx context.Context, args ...any) (sql.Result, error) {
	args, err := s.c.args(args)
	if err != nil {
		return nil, err
	}
	return s.s.ExecContext(ctx, args...)
}

// Close releases the statement.
func (s *stmt) Close() error { return s.s.Close() }
