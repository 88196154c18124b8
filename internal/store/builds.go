package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Values of TemplateBuild.Status.
const (
	BuildRunning  = "building"
	BuildFinished = "ready"
	BuildFailed   = "error"
)

// TemplateBuild is the control plane's record of a template build it
// started: who asked for it and whether it still runs. The builder keeps the
// build's steps and logs.
type TemplateBuild struct {
	// ID is the build's ID (a UUID): required and unique.
	ID string
	// TeamID is the team that started the build: required.
	TeamID string
	// TemplateID is the template the build makes a version of; the
	// template exists only once a build of it succeeded.
	TemplateID string
	// Name is the team's name for the template.
	Name string
	// Status is BuildRunning, BuildFinished or BuildFailed.
	Status string
	// StartedAt is set to now by InsertTemplateBuild when zero.
	StartedAt time.Time
	// FinishedAt is when FinishTemplateBuild recorded the end; nil while
	// the build runs.
	FinishedAt *time.Time
}

// buildColumns is the column list read by scanBuild.
const buildColumns = `id, team_id, template_id, name, status, started_at, finished_at`

// scanBuild reads one row selected with buildColumns.
func scanBuild(r scanner) (*TemplateBuild, error) {
	var (
		b        TemplateBuild
		started  int64
		finished sql.NullInt64
	)
	if err := r.Scan(&b.ID, &b.TeamID, &b.TemplateID, &b.Name, &b.Status, &started, &finished); err != nil {
		return nil, err
	}
	b.StartedAt, b.FinishedAt = decTime(started), decTimePtr(finished)
	return &b, nil
}

// InsertTemplateBuild records a new running build, provided the team's
// running builds stay within its max-builds quota (defaults.MaxBuilds when
// the team has not set one): the count and the insert are one transaction,
// so concurrent starts cannot both take the last slot. Over the quota is a
// *QuotaError (ErrQuota); an existing ID ErrExists; an unknown team
// ErrNotFound. It sets b.Status to BuildRunning and b.StartedAt to now when
// zero.
func (db *DB) InsertTemplateBuild(ctx context.Context, b *TemplateBuild, defaults Quotas) error {
	if b == nil || b.ID == "" || b.TeamID == "" || b.TemplateID == "" {
		return fmt.Errorf("insert template build: ID, TeamID and TemplateID are required: %w", ErrInvalid)
	}
	startedAt := b.StartedAt
	if startedAt.IsZero() {
		startedAt = db.now().UTC()
	}
	started, err := encTime(startedAt)
	if err != nil {
		return fmt.Errorf("insert template build %s: %w", b.ID, err)
	}
	err = db.write(ctx, func(tx conn) error {
		team, err := teamTx(ctx, tx, b.TeamID)
		if err != nil {
			return err
		}
		if limit := team.Quotas.Resolve(defaults).MaxBuilds; limit > 0 {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM template_builds WHERE team_id = ? AND status = ?`,
				b.TeamID, BuildRunning).Scan(&n); err != nil {
				return fmt.Errorf("count running builds: %w", err)
			}
			if n+1 > limit {
				return &QuotaError{TeamSlug: team.Slug, Quota: QuotaBuilds, Limit: limit, Used: n, Asked: 1}
			}
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO template_builds (`+buildColumns+`) VALUES (?, ?, ?, ?, ?, ?, NULL)`,
			b.ID, b.TeamID, b.TemplateID, b.Name, BuildRunning, started)
		if isUniqueViolation(err) {
			return ErrExists
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("insert template build %s: %w", b.ID, err)
	}
	b.Status, b.StartedAt, b.FinishedAt = BuildRunning, decTime(started), nil
	return nil
}

// GetTemplateBuild returns the build with this ID, or ErrNotFound.
func (db *DB) GetTemplateBuild(ctx context.Context, id string) (*TemplateBuild, error) {
	b, err := scanBuild(db.pool().QueryRowContext(ctx, `SELECT `+buildColumns+` FROM template_builds WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("get template build %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get template build %s: %w", id, err)
	}
	return b, nil
}

// ListRunningBuilds returns the builds still recorded as running, of team
// teamID or of every team when it is "", oldest first. The result is never
// nil.
func (db *DB) ListRunningBuilds(ctx context.Context, teamID string) ([]*TemplateBuild, error) {
	q := `SELECT ` + buildColumns + ` FROM template_builds WHERE status = ? ORDER BY started_at, id`
	args := []any{BuildRunning}
	if teamID != "" {
		q = `SELECT ` + buildColumns + ` FROM template_builds WHERE team_id = ? AND status = ? ORDER BY started_at, id`
		args = []any{teamID, BuildRunning}
	}
	rows, err := db.pool().QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list running builds: %w", err)
	}
	defer rows.Close()
	list := []*TemplateBuild{}
	for rows.Next() {
		b, err := scanBuild(rows)
		if err != nil {
			return nil, fmt.Errorf("list running builds: %w", err)
		}
		list = append(list, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list running builds: %w", err)
	}
	return list, nil
}

// FinishTemplateBuild records that a running build ended with status
// (BuildFinished or BuildFailed) at time at. A build that already ended
// keeps its first record; an unknown ID is ErrNotFound.
func (db *DB) FinishTemplateBuild(ctx context.Context, id, status string, at time.Time) error {
	if status != BuildFinished && status != BuildFailed {
		return fmt.Errorf("finish template build %s: status %q: %w", id, status, ErrInvalid)
	}
	ts, err := encTime(at)
	if err != nil {
		return fmt.Errorf("finish template build %s: %w", id, err)
	}
	err = db.write(ctx, func(tx conn) error {
		var cur string
		if err := tx.QueryRowContext(ctx, `SELECT status FROM template_builds WHERE id = ?`, id).Scan(&cur); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return ErrNotFound
			}
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE template_builds SET status = ?, finished_at = ?
			WHERE id = ? AND status = ?`, status, ts, id, BuildRunning)
		return err
	})
	if err != nil {
		return fmt.Errorf("finish template build %s: %w", id, err)
	}
	return nil
}

// DeleteTemplateBuild removes the record of a build that never started (the
// builder refused it); an unknown ID is ErrNotFound.
func (db *DB) DeleteTemplateBuild(ctx context.Context, id string) error {
	if err := db.writeOne(ctx, `DELETE FROM template_builds WHERE id = ?`, id); err != nil {
		return fmt.Errorf("delete template build %s: %w", id, err)
	}
	return nil
}
