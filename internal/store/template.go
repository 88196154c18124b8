package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Values of Template.Status. The store does not restrict the field.
const (
	TemplateBuilding = "building"
	TemplateReady    = "ready"
	TemplateError    = "error"
)

// Template is a stored sandbox template.
type Template struct {
	// ID is the template's name (e.g. "base"): required, unique, and never
	// equal to another template's alias.
	ID string
	// BuildID identifies the current build (version) of the template.
	BuildID string
	// RootfsPath is the root file system of the current build.
	RootfsPath string
	// CPUCount, MemoryMB and DiskSizeMB are the defaults for sandboxes.
	CPUCount, MemoryMB, DiskSizeMB int
	// StartCmd runs when a sandbox starts; ReadyCmd tells it is ready.
	StartCmd, ReadyCmd string
	// EnvdVersion is the semver of the daemon in the build.
	EnvdVersion string
	// Status is TemplateBuilding, TemplateReady or TemplateError.
	Status string
	// CreatedAt is set when the template is first put (to now when zero)
	// and kept by later puts; PutTemplate writes the stored value back.
	CreatedAt time.Time
	// UpdatedAt is set to now by every PutTemplate.
	UpdatedAt time.Time
	// Public templates are usable by every API key.
	Public bool
	// Aliases are other names GetTemplate accepts. Each is non-empty and
	// belongs to one template only; none equals another template's ID.
	// Returned sorted, without duplicates.
	Aliases []string
}

// templateColumns is the column list read by scanTemplate.
const templateColumns = `t.id, t.build_id, t.rootfs_path, t.cpu_count, t.memory_mb, t.disk_size_mb,
	t.start_cmd, t.ready_cmd, t.envd_version, t.status, t.public, t.created_at, t.updated_at`

// scanTemplate reads one row selected with templateColumns (no aliases).
func scanTemplate(r scanner) (*Template, error) {
	var (
		t                Template
		created, updated int64
	)
	if err := r.Scan(&t.ID, &t.BuildID, &t.RootfsPath, &t.CPUCount, &t.MemoryMB, &t.DiskSizeMB,
		&t.StartCmd, &t.ReadyCmd, &t.EnvdVersion, &t.Status, &t.Public, &created, &updated); err != nil {
		return nil, err
	}
	t.CreatedAt, t.UpdatedAt = decTime(created), decTime(updated)
	t.Aliases = []string{}
	return &t, nil
}

// PutTemplate inserts the template or replaces the stored one with the same
// ID, aliases included. It sets t.UpdatedAt to now, t.CreatedAt to the
// stored creation time, and t.Aliases to the sorted, de-duplicated list. An
// alias (or the ID) already naming another template is ErrExists.
func (db *DB) PutTemplate(ctx context.Context, t *Template) error {
	if t == nil || t.ID == "" {
		return fmt.Errorf("put template: empty ID: %w", ErrInvalid)
	}
	aliases := slices.Clone(t.Aliases)
	slices.Sort(aliases)
	aliases = slices.Compact(aliases)
	if len(aliases) > 0 && aliases[0] == "" {
		return fmt.Errorf("put template %s: empty alias: %w", t.ID, ErrInvalid)
	}
	now := db.now().UTC()
	createdAt := t.CreatedAt
	if createdAt.IsZero() {
		createdAt = now
	}
	created, err := encTime(createdAt)
	if err != nil {
		return fmt.Errorf("put template %s: %w", t.ID, err)
	}
	updated, err := encTime(now)
	if err != nil {
		return fmt.Errorf("put template %s: %w", t.ID, err)
	}
	var storedCreated int64
	err = db.write(ctx, func(tx *sql.Tx) error {
		var taken string
		err := tx.QueryRowContext(ctx, `SELECT alias FROM template_aliases
			WHERE alias = ? AND template_id <> ?`, t.ID, t.ID).Scan(&taken)
		if err == nil {
			return fmt.Errorf("ID is an alias of another template: %w", ErrExists)
		} else if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if err := tx.QueryRowContext(ctx, `INSERT INTO templates (id, build_id, rootfs_path,
			cpu_count, memory_mb, disk_size_mb, start_cmd, ready_cmd, envd_version, status, public,
			created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET build_id = excluded.build_id,
			rootfs_path = excluded.rootfs_path, cpu_count = excluded.cpu_count,
			memory_mb = excluded.memory_mb, disk_size_mb = excluded.disk_size_mb,
			start_cmd = excluded.start_cmd, ready_cmd = excluded.ready_cmd,
			envd_version = excluded.envd_version, status = excluded.status,
			public = excluded.public, updated_at = excluded.updated_at
			RETURNING created_at`,
			t.ID, t.BuildID, t.RootfsPath, t.CPUCount, t.MemoryMB, t.DiskSizeMB, t.StartCmd,
			t.ReadyCmd, t.EnvdVersion, t.Status, t.Public, created, updated,
		).Scan(&storedCreated); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM template_aliases WHERE template_id = ?`, t.ID); err != nil {
			return fmt.Errorf("clear aliases: %w", err)
		}
		for _, a := range aliases {
			if a != t.ID {
				var other string
				err := tx.QueryRowContext(ctx, `SELECT id FROM templates WHERE id = ?`, a).Scan(&other)
				if err == nil {
					return fmt.Errorf("alias %q is another template's ID: %w", a, ErrExists)
				} else if !errors.Is(err, sql.ErrNoRows) {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx,
				`INSERT INTO template_aliases (alias, template_id) VALUES (?, ?)`, a, t.ID); err != nil {
				if isUniqueViolation(err) {
					return fmt.Errorf("alias %q belongs to another template: %w", a, ErrExists)
				}
				return fmt.Errorf("insert alias %q: %w", a, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("put template %s: %w", t.ID, err)
	}
	t.CreatedAt, t.UpdatedAt = decTime(storedCreated), decTime(updated)
	t.Aliases = aliases
	if t.Aliases == nil {
		t.Aliases = []string{}
	}
	return nil
}

// GetTemplate returns the template whose ID, or else one of whose aliases,
// is idOrAlias; ErrNotFound when none.
func (db *DB) GetTemplate(ctx context.Context, idOrAlias string) (*Template, error) {
	var t *Template
	err := db.read(ctx, func(tx *sql.Tx) error {
		var err error
		t, err = scanTemplate(tx.QueryRowContext(ctx, `SELECT `+templateColumns+` FROM templates t
			WHERE t.id = ?1 OR t.id = (SELECT template_id FROM template_aliases WHERE alias = ?1)
			ORDER BY t.id = ?1 DESC LIMIT 1`, idOrAlias))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx,
			`SELECT alias FROM template_aliases WHERE template_id = ? ORDER BY alias`, t.ID)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var a string
			if err := rows.Scan(&a); err != nil {
				return err
			}
			t.Aliases = append(t.Aliases, a)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("get template %s: %w", idOrAlias, err)
	}
	return t, nil
}

// ListTemplates returns every template, ordered by ID. The result is never
// nil.
func (db *DB) ListTemplates(ctx context.Context) ([]*Template, error) {
	list := []*Template{}
	err := db.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+templateColumns+` FROM templates t ORDER BY t.id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		byID := map[string]*Template{}
		for rows.Next() {
			t, err := scanTemplate(rows)
			if err != nil {
				return err
			}
			list = append(list, t)
			byID[t.ID] = t
		}
		if err := rows.Err(); err != nil {
			return err
		}
		arows, err := tx.QueryContext(ctx, `SELECT template_id, alias FROM template_aliases ORDER BY alias`)
		if err != nil {
			return err
		}
		defer arows.Close()
		for arows.Next() {
			var id, a string
			if err := arows.Scan(&id, &a); err != nil {
				return err
			}
			if t := byID[id]; t != nil {
				t.Aliases = append(t.Aliases, a)
			}
		}
		return arows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("list templates: %w", err)
	}
	return list, nil
}

// DeleteTemplate removes the template and its aliases; ErrNotFound when
// there is none with this ID. Sandboxes created from it are not touched.
func (db *DB) DeleteTemplate(ctx context.Context, id string) error {
	err := db.writeOne(ctx, `DELETE FROM templates WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("delete template %s: %w", id, err)
	}
	return nil
}
