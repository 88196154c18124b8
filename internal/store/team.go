package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// The team every record made before teams existed belongs to, and the one
// the first API key is made in.
const (
	DefaultTeamID   = "00000000-0000-0000-0000-000000000000"
	DefaultTeamSlug = "default"
)

// MaxSlugLen bounds a team slug.
const MaxSlugLen = 63

// slugRE is what a team slug is made of (E2B's namespace alphabet).
var slugRE = regexp.MustCompile(`^[a-z0-9_-]+$`)

// ValidSlug reports whether s can be a team slug: 1-63 of a-z, 0-9, '-'
// and '_'.
func ValidSlug(s string) bool { return len(s) <= MaxSlugLen && slugRE.MatchString(s) }

// Team is a tenant: it owns API keys, sandboxes, templates and builds.
type Team struct {
	// ID is the primary key (a UUID for teams made by the control plane).
	ID string
	// Slug is unique and valid by ValidSlug.
	Slug string
	// Name is a human label.
	Name string
	// CreatedAt is set to now by InsertTeam when zero.
	CreatedAt time.Time
	// Quotas are the team's own limits.
	Quotas QuotaSettings
}

// teamColumns is the column list read by scanTeam.
const teamColumns = `id, slug, name, created_at, max_sandboxes, max_vcpu, max_memory_mb, max_builds`

// scanTeam reads one row selected with teamColumns.
func scanTeam(r scanner) (*Team, error) {
	var (
		t       Team
		created int64
		q       [4]sql.NullInt64
	)
	if err := r.Scan(&t.ID, &t.Slug, &t.Name, &created, &q[0], &q[1], &q[2], &q[3]); err != nil {
		return nil, err
	}
	t.CreatedAt = decTime(created)
	dst := []**int{&t.Quotas.MaxSandboxes, &t.Quotas.MaxVCPU, &t.Quotas.MaxMemoryMB, &t.Quotas.MaxBuilds}
	for i, n := range q {
		if n.Valid {
			v := int(n.Int64)
			*dst[i] = &v
		}
	}
	return &t, nil
}

// quotaArgs returns the quota columns' values, NULL for unset.
func quotaArgs(q QuotaSettings) []any {
	out := make([]any, 0, 4)
	for _, p := range []*int{q.MaxSandboxes, q.MaxVCPU, q.MaxMemoryMB, q.MaxBuilds} {
		if p == nil {
			out = append(out, nil)
		} else {
			out = append(out, *p)
		}
	}
	return out
}

// InsertTeam stores a new team, setting t.CreatedAt to now when zero. An
// invalid slug or a negative quota is ErrInvalid; a team with the same ID or
// slug is ErrExists.
func (db *DB) InsertTeam(ctx context.Context, t *Team) error {
	if t == nil || t.ID == "" {
		return fmt.Errorf("insert team: ID is required: %w", ErrInvalid)
	}
	if !ValidSlug(t.Slug) {
		return fmt.Errorf("insert team %s: slug %q must be 1-%d of a-z, 0-9, '-' and '_': %w", t.ID, t.Slug, MaxSlugLen, ErrInvalid)
	}
	if err := t.Quotas.check(); err != nil {
		return fmt.Errorf("insert team %s: %w", t.Slug, err)
	}
	createdAt := t.CreatedAt
	if createdAt.IsZero() {
		createdAt = db.now().UTC()
	}
	created, err := encTime(createdAt)
	if err != nil {
		return fmt.Errorf("insert team %s: %w", t.Slug, err)
	}
	args := append([]any{t.ID, t.Slug, t.Name, created}, quotaArgs(t.Quotas)...)
	err = db.write(ctx, func(tx conn) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO teams (`+teamColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, args...)
		if isUniqueViolation(err) {
			return ErrExists
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("insert team %s: %w", t.Slug, err)
	}
	t.CreatedAt = decTime(created)
	return nil
}

// GetTeam returns the team with this ID, or ErrNotFound.
func (db *DB) GetTeam(ctx context.Context, id string) (*Team, error) {
	t, err := scanTeam(db.pool().QueryRowContext(ctx, `SELECT `+teamColumns+` FROM teams WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("get team %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get team %s: %w", id, err)
	}
	return t, nil
}

// TeamBySlug returns the team with this slug, or ErrNotFound.
func (db *DB) TeamBySlug(ctx context.Context, slug string) (*Team, error) {
	t, err := scanTeam(db.pool().QueryRowContext(ctx, `SELECT `+teamColumns+` FROM teams WHERE slug = ?`, slug))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("get team %q: %w", slug, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get team %q: %w", slug, err)
	}
	return t, nil
}

// ListTeams returns every team, ordered by slug. The result is never nil.
func (db *DB) ListTeams(ctx context.Context) ([]*Team, error) {
	rows, err := db.pool().QueryContext(ctx, `SELECT `+teamColumns+` FROM teams ORDER BY slug`)
	if err != nil {
		return nil, fmt.Errorf("list teams: %w", err)
	}
	defer rows.Close()
	list := []*Team{}
	for rows.Next() {
		t, err := scanTeam(rows)
		if err != nil {
			return nil, fmt.Errorf("list teams: %w", err)
		}
		list = append(list, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list teams: %w", err)
	}
	return list, nil
}

// UpdateTeam replaces the name and quotas of team t.ID (the slug, ID and
// creation time stay). An unknown ID is ErrNotFound, a negative quota
// ErrInvalid.
func (db *DB) UpdateTeam(ctx context.Context, t *Team) error {
	if t == nil || t.ID == "" {
		return fmt.Errorf("update team: ID is required: %w", ErrInvalid)
	}
	if err := t.Quotas.check(); err != nil {
		return fmt.Errorf("update team %s: %w", t.ID, err)
	}
	args := append([]any{t.Name}, quotaArgs(t.Quotas)...)
	args = append(args, t.ID)
	if err := db.writeOne(ctx, `UPDATE teams SET name = ?, max_sandboxes = ?, max_vcpu = ?,
		max_memory_mb = ?, max_builds = ? WHERE id = ?`, args...); err != nil {
		return fmt.Errorf("update team %s: %w", t.ID, err)
	}
	return nil
}

// teamTx reads team id inside a transaction. It is the first read of every
// admission (see admitSandboxTx): a server database would lock the row here
// (SELECT ... FOR UPDATE) so that admissions of one team run one at a time;
// SQLite's write transactions are serialized already.
func teamTx(ctx context.Context, tx conn, id string) (*Team, error) {
	t, err := scanTeam(tx.QueryRowContext(ctx, `SELECT `+teamColumns+` FROM teams WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("team %s: %w", id, ErrNotFound)
	}
	return t, err
}
