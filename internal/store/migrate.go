package store

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
)

// migration is one schema step.
type migration struct {
	version int
	name    string
	sql     string
}

// migrationName matches NNNN_description.sql.
var migrationName = regexp.MustCompile(`^([0-9]+)_[a-z0-9_]+\.sql$`)

// loadMigrations reads the migrations from fsys/dir, sorted by version, and
// checks that the versions run 1, 2, 3, ... without gaps or repeats.
func loadMigrations(fsys fs.FS, dir string) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var migs []migration
	for _, e := range entries {
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil || e.IsDir() {
			return nil, fmt.Errorf("migration file %q is not named NNNN_description.sql", e.Name())
		}
		v, err := strconv.Atoi(m[1])
		if err != nil {
			return nil, fmt.Errorf("migration file %q: %w", e.Name(), err)
		}
		body, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read migration %q: %w", e.Name(), err)
		}
		migs = append(migs, migration{version: v, name: e.Name(), sql: string(body)})
	}
	slices.SortFunc(migs, func(a, b migration) int { return a.version - b.version })
	for i, m := range migs {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %q: version %d, want %d (versions must run 1, 2, 3, ...)", m.name, m.version, i+1)
		}
	}
	return migs, nil
}

// migrate brings the database to the newest schema version of its dialect,
// or to version upTo when it is not 0.
func (db *DB) migrate(ctx context.Context, upTo int) error {
	fsys, dir := db.d.migrations()
	migs, err := loadMigrations(fsys, dir)
	if err != nil {
		return err
	}
	if upTo > 0 {
		if upTo > len(migs) {
			return fmt.Errorf("schema version %d: this build knows up to %d: %w", upTo, len(migs), ErrInvalid)
		}
		migs = migs[:upTo]
	}
	return db.applyMigrations(ctx, migs)
}

// applyMigrations applies, in one transaction and in order, every migration
// newer than the version recorded in schema_migrations. A recorded version
// newer than the last of migs is ErrSchemaTooNew. Either all pending
// migrations are applied or none is.
func (db *DB) applyMigrations(ctx context.Context, migs []migration) error {
	c, err := db.sql.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer c.Close()
	unlock, err := db.d.lockSchema(ctx, c)
	if err != nil {
		return err
	}
	defer unlock()
	return db.writeRetried(ctx, c, func(tx conn) error {
		if _, err := tx.ExecContext(ctx, db.d.schemaTable()); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		var current int
		if err := tx.QueryRowContext(ctx,
			`SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		known := 0
		if len(migs) > 0 {
			known = migs[len(migs)-1].version
		}
		if current > known {
			return fmt.Errorf("schema version %d, this build knows up to %d: %w", current, known, ErrSchemaTooNew)
		}
		now, err := encTime(db.now())
		if err != nil {
			return err
		}
		for _, m := range migs {
			if m.version <= current {
				continue
			}
			// The file goes as it is (no placeholders to rewrite).
			if _, err := tx.x.ExecContext(ctx, m.sql); err != nil {
				return fmt.Errorf("apply migration %s: %w", m.name, err)
			}
			if _, err := tx.ExecContext(ctx,
				`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				m.version, m.name, now); err != nil {
				return fmt.Errorf("record migration %s: %w", m.name, err)
			}
		}
		return nil
	})
}

// SchemaVersion returns the schema version recorded in the database.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := db.pool().QueryRowContext(ctx,
		`SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}
