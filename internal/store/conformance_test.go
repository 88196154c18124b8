package store_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"

	"lelantos.dev/lelantos/internal/store/pgtest"
	"lelantos.dev/lelantos/internal/store/storetest"
)

// TestMain stops the PostgreSQL server the tests started.
func TestMain(m *testing.M) { pgtest.Main(m) }

// TestSQLite runs the conformance suite on SQLite files.
func TestSQLite(t *testing.T) {
	storetest.Run(t, storetest.Backend{
		NewLocation: func(tb testing.TB) string { return filepath.Join(tb.TempDir(), "lelantos.db") },
		Exec: func(tb testing.TB, path string, stmts ...string) {
			tb.Helper()
			db, err := sql.Open("sqlite", path)
			if err != nil {
				tb.Fatal(err)
			}
			defer db.Close()
			for _, s := range stmts {
				if _, err := db.Exec(s); err != nil {
					tb.Fatalf("%s: %v", s, err)
				}
			}
		},
	})
}

// TestPostgres runs the conformance suite on databases of a PostgreSQL
// server started for the test binary.
func TestPostgres(t *testing.T) {
	storetest.Run(t, storetest.Backend{
		NewLocation: pgtest.NewDatabase,
		Exec: func(tb testing.TB, url string, stmts ...string) {
			tb.Helper()
			ctx := context.Background()
			c, err := pgx.Connect(ctx, url)
			if err != nil {
				tb.Fatal(err)
			}
			defer c.Close(ctx)
			for _, s := range stmts {
				if _, err := c.Exec(ctx, s); err != nil {
					tb.Fatalf("%s: %v", s, err)
				}
			}
		},
	})
}
