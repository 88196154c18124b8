package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// APIKey is a stored API key. The key itself is never stored, only its hash.
type APIKey struct {
	// ID is the primary key: required and unique.
	ID string
	// TeamID is the team the key acts for: required.
	TeamID string
	// Name is a human label.
	Name string
	// Hash is the lower-case hex SHA-256 of the key: required and unique;
	// APIKeyByHash looks keys up by it.
	Hash string
	// Prefix is the key's first characters, for display only.
	Prefix string
	// Suffix is the key's last characters, for display only ("" for keys
	// made before it was kept).
	Suffix string
	// CreatedAt is set to now by InsertAPIKey when zero.
	CreatedAt time.Time
	// LastUsedAt is the latest time given to TouchAPIKey; nil = never used.
	LastUsedAt *time.Time
	// RevokedAt is when RevokeAPIKey was first called; nil = active. A
	// revoked key is still returned by lookups: callers must check it.
	RevokedAt *time.Time
}

// apiKeyColumns is the column list read by scanAPIKey.
const apiKeyColumns = `id, team_id, name, hash, prefix, suffix, created_at, last_used_at, revoked_at`

// scanAPIKey reads one row selected with apiKeyColumns.
func scanAPIKey(r scanner) (*APIKey, error) {
	var (
		k             APIKey
		created       int64
		used, revoked sql.NullInt64
	)
	if err := r.Scan(&k.ID, &k.TeamID, &k.Name, &k.Hash, &k.Prefix, &k.Suffix, &created, &used, &revoked); err != nil {
		return nil, err
	}
	k.CreatedAt = decTime(created)
	k.LastUsedAt, k.RevokedAt = decTimePtr(used), decTimePtr(revoked)
	return &k, nil
}

// InsertAPIKey stores a new key, setting k.CreatedAt to now when zero. A key
// with the same ID or Hash is ErrExists; one of an unknown team ErrNotFound.
func (db *DB) InsertAPIKey(ctx context.Context, k *APIKey) error {
	if k == nil || k.ID == "" || k.Hash == "" || k.TeamID == "" {
		return fmt.Errorf("insert API key: ID, TeamID and Hash are required: %w", ErrInvalid)
	}
	createdAt := k.CreatedAt
	if createdAt.IsZero() {
		createdAt = db.now().UTC()
	}
	created, err := encTime(createdAt)
	if err != nil {
		return fmt.Errorf("insert API key %s: %w", k.ID, err)
	}
	used, err := encTimePtr(k.LastUsedAt)
	if err != nil {
		return fmt.Errorf("insert API key %s: %w", k.ID, err)
	}
	revoked, err := encTimePtr(k.RevokedAt)
	if err != nil {
		return fmt.Errorf("insert API key %s: %w", k.ID, err)
	}
	err = db.write(ctx, func(tx conn) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO api_keys (`+apiKeyColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, k.ID, k.TeamID, k.Name, k.Hash, k.Prefix, k.Suffix, created, used, revoked)
		if isUniqueViolation(err) {
			return ErrExists
		}
		if isForeignKeyViolation(err) {
			return fmt.Errorf("team %s: %w", k.TeamID, ErrNotFound)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("insert API key %s: %w", k.ID, err)
	}
	k.CreatedAt = decTime(created)
	return nil
}

// APIKeyByHash returns the key with this hash, revoked or not, or
// ErrNotFound.
func (db *DB) APIKeyByHash(ctx context.Context, hash string) (*APIKey, error) {
	k, err := scanAPIKey(db.pool().QueryRowContext(ctx,
		`SELECT `+apiKeyColumns+` FROM api_keys WHERE hash = ?`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("look up API key by hash: %w", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("look up API key by hash: %w", err)
	}
	return k, nil
}

// GetAPIKey returns the key with this ID, revoked or not, or ErrNotFound.
func (db *DB) GetAPIKey(ctx context.Context, id string) (*APIKey, error) {
	k, err := scanAPIKey(db.pool().QueryRowContext(ctx,
		`SELECT `+apiKeyColumns+` FROM api_keys WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("get API key %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get API key %s: %w", id, err)
	}
	return k, nil
}

// ListAPIKeys returns every key of every team, revoked ones included,
// oldest first. The result is never nil.
func (db *DB) ListAPIKeys(ctx context.Context) ([]*APIKey, error) {
	return db.listAPIKeys(ctx, `SELECT `+apiKeyColumns+` FROM api_keys ORDER BY created_at, id`)
}

// ListTeamAPIKeys returns the keys of team teamID, revoked ones included,
// oldest first. The result is never nil.
func (db *DB) ListTeamAPIKeys(ctx context.Context, teamID string) ([]*APIKey, error) {
	return db.listAPIKeys(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE team_id = ?
		ORDER BY created_at, id`, teamID)
}

// listAPIKeys runs a query selecting apiKeyColumns.
func (db *DB) listAPIKeys(ctx context.Context, q string, args ...any) ([]*APIKey, error) {
	rows, err := db.pool().QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list API keys: %w", err)
	}
	defer rows.Close()
	keys := []*APIKey{}
	for rows.Next() {
		k, err := scanAPIKey(rows)
		if err != nil {
			return nil, fmt.Errorf("list API keys: %w", err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list API keys: %w", err)
	}
	return keys, nil
}

// RevokeAPIKey marks the key revoked now. Revoking a revoked key succeeds
// and keeps the first revocation time. An unknown ID is ErrNotFound.
func (db *DB) RevokeAPIKey(ctx context.Context, id string) error {
	now, err := encTime(db.now())
	if err != nil {
		return fmt.Errorf("revoke API key %s: %w", id, err)
	}
	if err := db.writeOne(ctx, `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`,
		now, id); err != nil {
		return fmt.Errorf("revoke API key %s: %w", id, err)
	}
	return nil
}

// RenameAPIKey sets the key's name; an unknown ID is ErrNotFound.
func (db *DB) RenameAPIKey(ctx context.Context, id, name string) error {
	if err := db.writeOne(ctx, `UPDATE api_keys SET name = ? WHERE id = ?`, name, id); err != nil {
		return fmt.Errorf("rename API key %s: %w", id, err)
	}
	return nil
}

// TouchAPIKey records a use of the key at the given time. LastUsedAt only
// moves forward: an older time than the stored one is ignored. An unknown ID
// is ErrNotFound. Each call is a durable write: callers on the request path
// should not touch the same key more than every few seconds.
func (db *DB) TouchAPIKey(ctx context.Context, id string, at time.Time) error {
	if at.IsZero() {
		return fmt.Errorf("touch API key %s: zero time: %w", id, ErrInvalid)
	}
	t, err := encTime(at)
	if err != nil {
		return fmt.Errorf("touch API key %s: %w", id, err)
	}
	if err := db.writeOne(ctx, `UPDATE api_keys SET last_used_at =
		CASE WHEN last_used_at IS NULL OR last_used_at < ? THEN ? ELSE last_used_at END WHERE id = ?`,
		t, t, id); err != nil {
		return fmt.Errorf("touch API key %s: %w", id, err)
	}
	return nil
}
