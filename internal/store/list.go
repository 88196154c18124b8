package store

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// SandboxFilter selects and pages sandboxes for ListSandboxes. Sandboxes are
// ordered by (StartedAt, ID): oldest first by default, newest first with
// Descending.
type SandboxFilter struct {
	// TeamID, when not "", keeps only this team's sandboxes. The control
	// plane sets it on every listing made for a caller.
	TeamID string
	// States keeps sandboxes in any of these states; empty = all states.
	States []string
	// Metadata keeps sandboxes whose metadata holds every one of these pairs
	// with exactly this value (case-sensitive; any characters allowed).
	Metadata map[string]string
	// TemplateID, when not "", keeps only sandboxes of this template ID.
	TemplateID string
	// StartedAfter, when not zero, keeps sandboxes with StartedAt strictly
	// after it.
	StartedAfter time.Time
	// Descending orders newest first; the default is oldest first.
	Descending bool
	// Limit is the page size; 0 = everything. The control plane enforces
	// 1..100; negative is ErrInvalid.
	Limit int
	// Cursor continues after the last item of a previous page (its
	// nextCursor). It records a position, not the filter: pass the same
	// filter and order again. Anything else is ErrInvalidCursor.
	Cursor string
}

// cursorVersion prefixes every cursor, so the format can change later.
const cursorVersion = "c1"

// encodeCursor makes the opaque cursor for the position after the listed
// sandbox with this (started_at, id). It is URL- and header-safe.
func encodeCursor(startedAt int64, id string) string {
	raw := cursorVersion + ":" + strconv.FormatInt(startedAt, 10) + ":" + id
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// decodeCursor is the inverse of encodeCursor.
func decodeCursor(c string) (startedAt int64, id string, err error) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, "", fmt.Errorf("cursor is not base64: %w", ErrInvalidCursor)
	}
	parts := strings.SplitN(string(raw), ":", 3)
	if len(parts) != 3 || parts[0] != cursorVersion || parts[2] == "" || badText(parts[2]) {
		return 0, "", fmt.Errorf("cursor is malformed: %w", ErrInvalidCursor)
	}
	startedAt, err = strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return 0, "", fmt.Errorf("cursor has a bad position: %w", ErrInvalidCursor)
	}
	return startedAt, parts[2], nil
}

// listQuery builds the SQL and arguments for a filter. It fetches one row
// more than the limit to learn whether there is a next page.
//
// The query runs in two phases. The inner one finds the page's row IDs from
// indexes alone, ordered and limited, so that whatever it must sort is small
// (state, started_at, id) tuples; the outer one reads the full rows of just
// that page. With a metadata filter the first pair's index entries, which
// carry started_at, drive the inner phase and already come in list order.
func listQuery(d dialect, f SandboxFilter) (string, []any, error) {
	var (
		q     strings.Builder
		where []string
		args  []any
	)
	keys := make([]string, 0, len(f.Metadata))
	for k := range f.Metadata {
		keys = append(keys, k)
	}
	slices.Sort(keys) // a stable statement text
	started, id := "s.started_at", "s.id"
	if len(keys) > 0 {
		started, id = "m0.started_at", "m0.sandbox_id"
	}
	cmp, order := ">", "ASC"
	if f.Descending {
		cmp, order = "<", "DESC"
	}

	key := d.rowKey()
	fmt.Fprintf(&q, `WITH page AS MATERIALIZED (SELECT s.%s AS rid, %s AS started_at, %s AS id FROM sandboxes s`, key, started, id)
	// One join per metadata pair: (sandbox_id, key) is the side table's
	// primary key, so each join matches at most one row and never
	// duplicates a sandbox.
	for i, k := range keys {
		fmt.Fprintf(&q, ` JOIN sandbox_metadata m%d ON m%d.sandbox_id = s.id AND m%d.key = ? AND m%d.value = ?`, i, i, i, i)
		args = append(args, k, f.Metadata[k])
		if i == 0 && f.TeamID != "" {
			// The driving pair's rows carry the team: its index narrows to it.
			q.WriteString(` AND m0.team_id = ?`)
			args = append(args, f.TeamID)
		}
	}
	if f.TeamID != "" {
		where = append(where, `s.team_id = ?`)
		args = append(args, f.TeamID)
	}
	if len(f.States) > 0 {
		where = append(where, `s.state IN (?`+strings.Repeat(`, ?`, len(f.States)-1)+`)`)
		for _, st := range f.States {
			args = append(args, st)
		}
	}
	if f.TemplateID != "" {
		where = append(where, `s.template_id = ?`)
		args = append(args, f.TemplateID)
	}
	if !f.StartedAfter.IsZero() {
		after, err := encTime(f.StartedAfter)
		if err != nil {
			return "", nil, fmt.Errorf("startedAfter: %w", err)
		}
		where = append(where, started+` > ?`)
		args = append(args, after)
	}
	if f.Cursor != "" {
		cStarted, cID, err := decodeCursor(f.Cursor)
		if err != nil {
			return "", nil, err
		}
		where = append(where, fmt.Sprintf(`(%s, %s) %s (?, ?)`, started, id, cmp))
		args = append(args, cStarted, cID)
	}
	if len(where) > 0 {
		q.WriteString(` WHERE ` + strings.Join(where, ` AND `))
	}
	fmt.Fprintf(&q, ` ORDER BY %s %s, %s %s`, started, order, id, order)
	if f.Limit > 0 {
		q.WriteString(` LIMIT ?`)
		args = append(args, f.Limit+1)
	}
	fmt.Fprintf(&q, `) SELECT %s FROM page p JOIN sandboxes s ON s.%s = p.rid ORDER BY p.started_at %s, p.id %s`,
		sandboxColumns, key, order, order)
	return q.String(), args, nil
}

// ListSandboxes returns one page of the sandboxes matching f, and the cursor
// of the next page ("" when this is the last page). Paging with the cursors
// visits every matching sandbox exactly once, provided sandboxes do not
// change StartedAt meanwhile. A cursor not from this package is
// ErrInvalidCursor. The result is never nil.
func (db *DB) ListSandboxes(ctx context.Context, f SandboxFilter) ([]*Sandbox, string, error) {
	if err := checkLimit(f.Limit); err != nil {
		return nil, "", fmt.Errorf("list sandboxes: %w", err)
	}
	q, args, err := listQuery(db.d, f)
	if err != nil {
		return nil, "", fmt.Errorf("list sandboxes: %w", err)
	}
	items, err := db.querySandboxes(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list sandboxes: %w", err)
	}
	next := ""
	if f.Limit > 0 && len(items) > f.Limit {
		items = items[:f.Limit]
		last := items[len(items)-1]
		startedAt, err := encTime(last.StartedAt)
		if err != nil {
			return nil, "", fmt.Errorf("list sandboxes: %w", err)
		}
		next = encodeCursor(startedAt, last.ID)
	}
	return items, next, nil
}

// DueFilter selects one page of ListDue.
type DueFilter struct {
	// State is the state of the sandboxes listed: StateRunning for those
	// past their end time, StatePaused for those paused since before a
	// retention bound (the control plane sets EndAt when it pauses).
	State string
	// Before keeps sandboxes whose EndAt is at or before it.
	Before time.Time
	// AfterEndAt and AfterID, when AfterID is not "", continue after that
	// sandbox, the last of the previous page.
	AfterEndAt time.Time
	AfterID    string
	// Limit is the page size; 0 = everything, negative is ErrInvalid.
	Limit int
}

// ListDue returns one page of the sandboxes in f.State whose EndAt is at or
// before f.Before, soonest EndAt first (then by ID); a zero EndAt is due at
// once. Paging by the last item visits every match once even when listed
// sandboxes are changed or deleted meanwhile. The result is never nil.
func (db *DB) ListDue(ctx context.Context, f DueFilter) ([]*Sandbox, error) {
	q, args, err := dueQuery(f)
	if err != nil {
		return nil, fmt.Errorf("list due sandboxes: %w", err)
	}
	items, err := db.querySandboxes(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list due sandboxes: %w", err)
	}
	return items, nil
}

// dueQuery builds the SQL and arguments of ListDue, which reads the
// (state, end_at) index.
func dueQuery(f DueFilter) (string, []any, error) {
	if err := checkLimit(f.Limit); err != nil {
		return "", nil, err
	}
	if !ValidState(f.State) {
		return "", nil, fmt.Errorf("state %q: %w", f.State, ErrInvalid)
	}
	before, err := encTime(f.Before)
	if err != nil {
		return "", nil, err
	}
	q := `SELECT ` + sandboxColumns + ` FROM sandboxes s WHERE s.state = ? AND s.end_at <= ?`
	args := []any{f.State, before}
	if f.AfterID != "" {
		after, err := encTime(f.AfterEndAt)
		if err != nil {
			return "", nil, err
		}
		// The first term narrows the index range; the second breaks ties.
		q += ` AND s.end_at >= ? AND (s.end_at > ? OR s.id > ?)`
		args = append(args, after, after, f.AfterID)
	}
	q += ` ORDER BY s.end_at, s.id`
	if f.Limit > 0 {
		q += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	return q, args, nil
}

// querySandboxes runs a query selecting sandboxColumns and scans all rows.
// One statement reads one consistent snapshot, so no transaction is needed.
func (db *DB) querySandboxes(ctx context.Context, q string, args ...any) ([]*Sandbox, error) {
	rows, err := db.pool().QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	items := []*Sandbox{}
	for rows.Next() {
		s, err := scanSandbox(rows)
		if err != nil {
			return nil, err
		}
		items = append(items, s)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	if err := loadVolumeMounts(ctx, db.pool(), items...); err != nil {
		return nil, err
	}
	return items, nil
}
