package store

import (
	"cmp"
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
	// ID identifies the template across all teams: required and unique.
	ID string
	// TeamID is the owning team. PutTemplate of an existing template with
	// an empty TeamID keeps the stored team (a template never changes
	// teams); of a new one, it takes the team of its build (BuildID, as
	// recorded by InsertTemplateBuild), else the default team. This lets
	// the template builder, which knows nothing of teams, register builds.
	TeamID string
	// Name is the team's name for the template, unique in the team among
	// names and aliases. Empty in PutTemplate means the stored name, else
	// the name recorded with the build, else the ID.
	Name string
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
	// Public templates are visible to, and usable by, every team.
	Public bool
	// Aliases are other names of the template in its team. Each is
	// non-empty and names no other template of the team. Returned sorted,
	// without duplicates.
	Aliases []string
}

// templateColumns is the column list read by scanTemplate.
const templateColumns = `t.id, t.team_id, t.name, t.build_id, t.rootfs_path, t.cpu_count, t.memory_mb,
	t.disk_size_mb, t.start_cmd, t.ready_cmd, t.envd_version, t.status, t.public, t.created_at, t.updated_at`

// scanTemplate reads one row selected with templateColumns (no aliases).
func scanTemplate(r scanner) (*Template, error) {
	var (
		t                Template
		created, updated int64
	)
	if err := r.Scan(&t.ID, &t.TeamID, &t.Name, &t.BuildID, &t.RootfsPath, &t.CPUCount, &t.MemoryMB,
		&t.DiskSizeMB, &t.StartCmd, &t.ReadyCmd, &t.EnvdVersion, &t.Status, &t.Public, &created, &updated); err != nil {
		return nil, err
	}
	t.CreatedAt, t.UpdatedAt = decTime(created), decTime(updated)
	t.Aliases = []string{}
	return &t, nil
}

// PutTemplate inserts the template or replaces the stored one with the same
// ID, aliases included. It sets t.TeamID and t.Name to what was stored (see
// their docs), t.UpdatedAt to now, t.CreatedAt to the stored creation time,
// and t.Aliases to the sorted, de-duplicated list. A TeamID other than the
// stored one, or a name or alias naming another template of the team, is
// ErrExists; an unknown team ErrNotFound.
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
	var (
		storedCreated int64
		team, name    string
	)
	err = db.write(ctx, func(tx conn) error {
		var storedTeam, storedName string
		err := tx.QueryRowContext(ctx, `SELECT team_id, name FROM templates WHERE id = ?`, t.ID).Scan(&storedTeam, &storedName)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			var buildTeam, buildName string
			if t.TeamID == "" && t.BuildID != "" {
				err := tx.QueryRowContext(ctx, `SELECT team_id, name FROM template_builds WHERE id = ? AND template_id = ?`,
					t.BuildID, t.ID).Scan(&buildTeam, &buildName)
				if err != nil && !errors.Is(err, sql.ErrNoRows) {
					return err
				}
			}
			team, name = cmp.Or(t.TeamID, buildTeam, DefaultTeamID), cmp.Or(t.Name, buildName, t.ID)
		case err != nil:
			return err
		case t.TeamID != "" && t.TeamID != storedTeam:
			return fmt.Errorf("the ID belongs to another team's template: %w", ErrExists)
		default:
			team, name = storedTeam, cmp.Or(t.Name, storedName)
		}
		var taken string
		err = tx.QueryRowContext(ctx, `SELECT alias FROM template_aliases
			WHERE team_id = ? AND alias = ? AND template_id <> ?`, team, name, t.ID).Scan(&taken)
		if err == nil {
			return fmt.Errorf("name %q is an alias of another template: %w", name, ErrExists)
		} else if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if err := tx.QueryRowContext(ctx, `INSERT INTO templates (id, team_id, name, build_id, rootfs_path,
			cpu_count, memory_mb, disk_size_mb, start_cmd, ready_cmd, envd_version, status, public,
			created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET name = excluded.name, build_id = excluded.build_id,
			rootfs_path = excluded.rootfs_path, cpu_count = excluded.cpu_count,
			memory_mb = excluded.memory_mb, disk_size_mb = excluded.disk_size_mb,
			start_cmd = excluded.start_cmd, ready_cmd = excluded.ready_cmd,
			envd_version = excluded.envd_version, status = excluded.status,
			public = excluded.public, updated_at = excluded.updated_at
			RETURNING created_at`,
			t.ID, team, name, t.BuildID, t.RootfsPath, t.CPUCount, t.MemoryMB, t.DiskSizeMB, t.StartCmd,
			t.ReadyCmd, t.EnvdVersion, t.Status, t.Public, created, updated,
		).Scan(&storedCreated); err != nil {
			if isUniqueViolation(err) {
				return fmt.Errorf("name %q names another template of the team: %w", name, ErrExists)
			}
			if isForeignKeyViolation(err) {
				return fmt.Errorf("team %s: %w", team, ErrNotFound)
			}
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM template_aliases WHERE template_id = ?`, t.ID); err != nil {
			return fmt.Errorf("clear aliases: %w", err)
		}
		for _, a := range aliases {
			var other string
			err := tx.QueryRowContext(ctx, `SELECT id FROM templates WHERE team_id = ? AND name = ? AND id <> ?`,
				team, a, t.ID).Scan(&other)
			if err == nil {
				return fmt.Errorf("alias %q is another template's name: %w", a, ErrExists)
			} else if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			if _, err := tx.ExecContext(ctx,
				`INSERT INTO template_aliases (team_id, alias, template_id) VALUES (?, ?, ?)`, team, a, t.ID); err != nil {
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
	t.TeamID, t.Name = team, name
	t.CreatedAt, t.UpdatedAt = decTime(storedCreated), decTime(updated)
	t.Aliases = aliases
	if t.Aliases == nil {
		t.Aliases = []string{}
	}
	return nil
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
