package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Snapshot is one build of a snapshot template: a checkpoint of a sandbox (its
// memory, processes and files), kept as an image on a node until its template is
// deleted. Sandboxes created from the template start from its newest build of the
// tag they name.
type Snapshot struct {
	// ID names the image on its node: required and unique.
	ID string
	// TemplateID is the snapshot template the build belongs to; TeamID its team.
	TemplateID string
	TeamID     string
	// Tag is the tag the build was made under: "default" unless named.
	Tag string
	// SandboxID is the sandbox the snapshot was taken of, which may be gone since.
	SandboxID string
	// BaseTemplateID is the template of that sandbox.
	BaseTemplateID string
	// NodeID is the node that holds the image.
	NodeID string
	// RuntimeClass is the source's runtime class; sandboxes from it use the same.
	RuntimeClass string
	// SizeBytes is the image's size on disk.
	SizeBytes int64
	// CreatedAt is when the snapshot was taken (now when zero).
	CreatedAt time.Time
	// KeptImage is the content address of the copy of the image the control
	// plane keeps, from which sandboxes start on other nodes ("" for none).
	KeptImage string
}

// SnapshotFilter selects snapshot templates of a team for ListSnapshots.
type SnapshotFilter struct {
	// TeamID is required: listings never span teams.
	TeamID string
	// SandboxID, when set, keeps the builds taken of that sandbox.
	SandboxID string
	// TemplateID, when set, keeps that template's builds; Tag, when set, those of
	// that tag.
	TemplateID, Tag string
	// Limit is the page size; 0 means no limit.
	Limit int
	// Cursor continues a listing from the cursor ListSnapshots returned with the
	// same filter.
	Cursor string
}

const snapshotColumns = `id, template_id, team_id, tag, sandbox_id, base_template_id, node_id,
	runtime_class, size_bytes, created_at, kept_image`

func scanSnapshot(r scanner) (*Snapshot, error) {
	var (
		s       Snapshot
		created int64
	)
	if err := r.Scan(&s.ID, &s.TemplateID, &s.TeamID, &s.Tag, &s.SandboxID, &s.BaseTemplateID, &s.NodeID,
		&s.RuntimeClass, &s.SizeBytes, &created, &s.KeptImage); err != nil {
		return nil, err
	}
	s.CreatedAt = decTime(created)
	return &s, nil
}

// PutSnapshot records snapshot s as the newest build of template t, in one
// transaction: a template with t.ID that does not exist yet is inserted, of team
// s.TeamID, named t.Name (its ID when empty), with t's sizes, tree and daemon
// version, ready and private; an existing one must be of s.TeamID (else ErrExists)
// and gets s as its current build. A name that another template of the team has
// as its name or alias is ErrExists. It sets t's stored fields (without aliases)
// and s.CreatedAt.
func (db *DB) PutSnapshot(ctx context.Context, t *Template, s *Snapshot) error {
	if t == nil || s == nil || t.ID == "" || s.ID == "" || s.TeamID == "" {
		return fmt.Errorf("put snapshot: template ID, snapshot ID and team are required: %w", ErrInvalid)
	}
	if s.CreatedAt.IsZero() {
		s.CreatedAt = db.now().UTC()
	}
	created, err := encTime(s.CreatedAt)
	if err != nil {
		return fmt.Errorf("put snapshot %s: %w", s.ID, err)
	}
	name := t.Name
	if name == "" {
		name = t.ID
	}
	err = db.write(ctx, func(tx conn) error {
		var team string
		err := tx.QueryRowContext(ctx, `SELECT team_id FROM templates WHERE id = ?`, t.ID).Scan(&team)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			var other string
			err := tx.QueryRowContext(ctx, `SELECT template_id FROM template_aliases WHERE team_id = ? AND alias = ?`,
				s.TeamID, name).Scan(&other)
			if err == nil {
				return fmt.Errorf("name %q is an alias of another template: %w", name, ErrExists)
			} else if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO templates (id, team_id, name, build_id, rootfs_path,
				cpu_count, memory_mb, disk_size_mb, start_cmd, ready_cmd, envd_version, status, public,
				created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, '', '', ?, ?, FALSE, ?, ?)`,
				t.ID, s.TeamID, name, s.ID, t.RootfsPath, t.CPUCount, t.MemoryMB, t.DiskSizeMB, t.EnvdVersion,
				TemplateReady, created, created); err != nil {
				if isUniqueViolation(err) {
					return fmt.Errorf("name %q names another template of the team: %w", name, ErrExists)
				}
				if isForeignKeyViolation(err) {
					return fmt.Errorf("team %s: %w", s.TeamID, ErrNotFound)
				}
				return err
			}
		case err != nil:
			return err
		case team != s.TeamID:
			return fmt.Errorf("the ID belongs to another team's template: %w", ErrExists)
		default:
			if _, err := tx.ExecContext(ctx, `UPDATE templates SET build_id = ?, updated_at = ? WHERE id = ?`,
				s.ID, created, t.ID); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO snapshots (`+snapshotColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			s.ID, t.ID, s.TeamID, s.Tag, s.SandboxID, s.BaseTemplateID, s.NodeID, s.RuntimeClass, s.SizeBytes, created, s.KeptImage)
		if isUniqueViolation(err) {
			return fmt.Errorf("snapshot %s: %w", s.ID, ErrExists)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("put snapshot %s: %w", s.ID, err)
	}
	s.TemplateID = t.ID
	stored, err := db.GetTemplate(ctx, t.ID)
	if err != nil {
		return fmt.Errorf("put snapshot %s: %w", s.ID, err)
	}
	*t = *stored
	return nil
}

// TemplateSnapshots returns the builds of template id, newest first; none (and
// no error) when it is not a snapshot template.
func (db *DB) TemplateSnapshots(ctx context.Context, id string) ([]*Snapshot, error) {
	out, err := db.querySnapshots(ctx, `SELECT `+snapshotColumns+` FROM snapshots
		WHERE template_id = ? ORDER BY created_at DESC, id DESC`, id)
	if err != nil {
		return nil, fmt.Errorf("snapshots of template %s: %w", id, err)
	}
	return out, nil
}

// ListSnapshots returns one page of the snapshot templates f selects, each as its
// newest build among those f keeps, newest first, and the cursor of the next page
// ("" when this is the last). A bad cursor is ErrInvalidCursor.
func (db *DB) ListSnapshots(ctx context.Context, f SnapshotFilter) ([]*Snapshot, string, error) {
	if f.TeamID == "" {
		return nil, "", fmt.Errorf("list snapshots: a team is required: %w", ErrInvalid)
	}
	if err := checkLimit(f.Limit); err != nil {
		return nil, "", fmt.Errorf("list snapshots: %w", err)
	}
	where, args := []string{"s.team_id = ?"}, []any{f.TeamID}
	if f.SandboxID != "" {
		where, args = append(where, "s.sandbox_id = ?"), append(args, f.SandboxID)
	}
	if f.TemplateID != "" {
		where, args = append(where, "s.template_id = ?"), append(args, f.TemplateID)
	}
	if f.Tag != "" {
		where, args = append(where, "s.tag = ?"), append(args, f.Tag)
	}
	page := "1 = 1"
	if f.Cursor != "" {
		at, id, err := decodeCursor(f.Cursor)
		if err != nil {
			return nil, "", fmt.Errorf("list snapshots: %w", err)
		}
		page, args = "(created_at < ? OR (created_at = ? AND id < ?))", append(args, at, at, id)
	}
	limit := ""
	if f.Limit > 0 {
		// One more tells whether there is a next page.
		limit, args = ` LIMIT ?`, append(args, f.Limit+1)
	}
	out, err := db.querySnapshots(ctx, `SELECT `+snapshotColumns+` FROM (
		SELECT s.*, ROW_NUMBER() OVER (PARTITION BY s.template_id ORDER BY s.created_at DESC, s.id DESC) AS newest
		FROM snapshots s WHERE `+strings.Join(where, " AND ")+`
	) AS n WHERE newest = 1 AND `+page+` ORDER BY created_at DESC, id DESC`+limit, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list snapshots: %w", err)
	}
	next := ""
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
		last := out[len(out)-1]
		next = encodeCursor(last.CreatedAt.UnixNano(), last.ID)
	}
	return out, next, nil
}

// DeleteSnapshot removes the record of one build; ErrNotFound when there is none.
// The template keeps its other builds (and its current build ID).
func (db *DB) DeleteSnapshot(ctx context.Context, id string) error {
	if err := db.writeOne(ctx, `DELETE FROM snapshots WHERE id = ?`, id); err != nil {
		return fmt.Errorf("delete snapshot %s: %w", id, err)
	}
	return nil
}

func (db *DB) querySnapshots(ctx context.Context, q string, args ...any) ([]*Snapshot, error) {
	out := []*Snapshot{}
	err := db.read(ctx, func(tx conn) error {
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			s, err := scanSnapshot(rows)
			if err != nil {
				return err
			}
			out = append(out, s)
		}
		return rows.Err()
	})
	return out, err
}
