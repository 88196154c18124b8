package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"lelantos.dev/lelantos/internal/store"
)

// storeUsage is the help of the --store flag of serve, keys and teams.
const storeUsage = `the store: a PostgreSQL URL (postgres://USER:PASSWORD@HOST:PORT/DATABASE?sslmode=..., or ` +
	`postgres:///DATABASE?host=/socket/dir; the database must exist, and control-plane replicas sharing it take ` +
	`turns) or the path of a SQLite file (default $LELANTOS_STORE, else DATA-DIR/lelantos.db); ` +
	`give a password in $LELANTOS_STORE or PGPASSWORD rather than on the command line`

// storeFlag is the default of --store: $LELANTOS_STORE.
func storeFlag() string { return os.Getenv("LELANTOS_STORE") }

// storeLocation is where the store of a server with data directory dataDir
// is, given --store (flagValue): a PostgreSQL URL as it is, a SQLite path
// made absolute, or the data directory's lelantos.db when not given.
func storeLocation(flagValue, dataDir string) (string, error) {
	switch {
	case flagValue == "":
		return filepath.Join(dataDir, "lelantos.db"), nil
	case store.IsPostgresURL(flagValue):
		return flagValue, nil
	}
	abs, err := filepath.Abs(flagValue)
	if err != nil {
		return "", fmt.Errorf("--store %q: %w", flagValue, err)
	}
	return abs, nil
}

// openAdminStore opens the store of the server whose data directory is
// flagDir (or its default), or the one --store (flagStore) names, for an
// administrator's command named cmd. A SQLite store must exist: a typo in
// --data-dir or --store must not make a new, empty one.
func openAdminStore(ctx context.Context, cmd, flagDir, flagStore string) (*store.DB, error) {
	d, err := dataDir(flagDir)
	if err != nil {
		return nil, fmt.Errorf("%s: --data-dir: %w", cmd, err)
	}
	loc, err := storeLocation(flagStore, d)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	if !store.IsPostgresURL(loc) {
		if _, err := os.Stat(loc); err != nil {
			return nil, fmt.Errorf("%s: no store at %s (start the server once, or pass --data-dir or --store): %w", cmd, loc, err)
		}
	}
	db, err := store.Open(ctx, loc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	return db, nil
}
