package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// GetTemplate returns the template with this ID, of any team, or
// ErrNotFound. Names are looked up with FindTemplate.
func (db *DB) GetTemplate(ctx context.Context, id string) (*Template, error) {
	t, err := db.oneTemplate(ctx, `SELECT `+templateColumns+` FROM templates t WHERE t.id = ?`, id)
	if err != nil {
		return nil, fmt.Errorf("get template %s: %w", id, err)
	}
	return t, nil
}

// FindTemplate returns the template ref names for team teamID: the team's
// own template with this name, alias or ID (in that order), else a public
// template of any team with this name, alias or ID (the oldest first when
// several teams have one); ErrNotFound when none. Another team's private
// template is never returned.
func (db *DB) FindTemplate(ctx context.Context, teamID, ref string) (*Template, error) {
	t, err := db.oneTemplate(ctx, `SELECT `+templateColumns+` FROM templates t
		WHERE (t.team_id = ?1 OR t.public) AND (t.name = ?2 OR t.id = ?2 OR EXISTS (
			SELECT 1 FROM template_aliases a WHERE a.team_id = t.team_id AND a.alias = ?2 AND a.template_id = t.id))
		ORDER BY CASE WHEN t.team_id = ?1 THEN 0 ELSE 3 END
			+ CASE WHEN t.name = ?2 THEN 0 WHEN t.id = ?2 THEN 2 ELSE 1 END, t.created_at, t.id
		LIMIT 1`, teamID, ref)
	if err != nil {
		return nil, fmt.Errorf("find template %q of team %s: %w", ref, teamID, err)
	}
	return t, nil
}

// oneTemplate runs a query selecting one template, and reads its aliases in
// the same snapshot. No row is ErrNotFound.
func (db *DB) oneTemplate(ctx context.Context, q string, args ...any) (*Template, error) {
	var t *Template
	err := db.read(ctx, func(tx conn) error {
		var err error
		t, err = scanTemplate(tx.QueryRowContext(ctx, q, args...))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		return loadAliases(ctx, tx, []*Template{t})
	})
	return t, err
}

// loadAliases fills in the aliases of ts.
func loadAliases(ctx context.Context, tx conn, ts []*Template) error {
	if len(ts) == 0 {
		return nil
	}
	byID := make(map[string]*Template, len(ts))
	args := make([]any, 0, len(ts))
	for _, t := range ts {
		byID[t.ID] = t
		args = append(args, t.ID)
	}
	rows, err := tx.QueryContext(ctx, `SELECT template_id, alias FROM template_aliases
		WHERE template_id IN (?`+strings.Repeat(`, ?`, len(ts)-1)+`) ORDER BY alias`, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id, a string
		if err := rows.Scan(&id, &a); err != nil {
			return err
		}
		if t := byID[id]; t != nil {
			t.Aliases = append(t.Aliases, a)
		}
	}
	return rows.Err()
}

// ListTemplates returns every template of every team, ordered by ID. The
// result is never nil.
func (db *DB) ListTemplates(ctx context.Context) ([]*Template, error) {
	list, err := db.listTemplates(ctx, `SELECT `+templateColumns+` FROM templates t ORDER BY t.id`)
	if err != nil {
		return nil, fmt.Errorf("list templates: %w", err)
	}
	return list, nil
}

// ListTeamTemplates returns the templates team teamID sees: its own and the
// public ones, ordered by ID. The result is never nil.
func (db *DB) ListTeamTemplates(ctx context.Context, teamID string) ([]*Template, error) {
	list, err := db.listTemplates(ctx, `SELECT `+templateColumns+` FROM templates t
		WHERE t.team_id = ? OR t.public ORDER BY t.id`, teamID)
	if err != nil {
		return nil, fmt.Errorf("list templates of team %s: %w", teamID, err)
	}
	return list, nil
}

// listTemplates runs a query selecting templates, with their aliases.
func (db *DB) listTemplates(ctx context.Context, q string, args ...any) ([]*Template, error) {
	list := []*Template{}
	err := db.read(ctx, func(tx conn) error {
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			t, err := scanTemplate(rows)
			if err != nil {
				return err
			}
			list = append(list, t)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		// In chunks: a statement takes a bounded number of parameters.
		for chunk := range slices.Chunk(list, 500) {
			if err := loadAliases(ctx, tx, chunk); err != nil {
				return err
			}
		}
		return nil
	})
	return list, err
}
