package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// ErrInUse: a volume is mounted by a sandbox that has not ended; the error is a
// *VolumeInUseError.
var ErrInUse = errors.New("in use")

// MaxVolumeNameLen bounds a volume's name.
const MaxVolumeNameLen = 128

// volumeNameRE is what a volume's name is made of (E2B's alphabet).
var volumeNameRE = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

// ValidVolumeName reports whether s can name a volume: 1-128 of a-z, A-Z, 0-9,
// '_' and '-'.
func ValidVolumeName(s string) bool {
	return len(s) <= MaxVolumeNameLen && volumeNameRE.MatchString(s)
}

// Volume is one volume's stored record.
type Volume struct {
	// ID is the primary key (a UUID).
	ID string
	// TeamID is the owning team; Name is unique within it.
	TeamID, Name string
	// SizeMB is the volume's size.
	SizeMB int
	// TokenKey signs the tokens of the volume's content API; it is secret.
	TokenKey string
	// CreatedAt is set to now by InsertVolume when zero.
	CreatedAt time.Time
}

// VolumeMount is one volume mounted into a sandbox.
type VolumeMount struct {
	// VolumeID is the volume's ID; InsertSandbox fills it in from Name when empty.
	VolumeID string
	// Name is the volume's name in the sandbox's team.
	Name string
	// Path is where the sandbox sees it.
	Path string
}

// MountError is a mount of a new sandbox naming no volume of its team; it is
// ErrNotFound.
type MountError struct {
	// Index is the mount's position in Sandbox.VolumeMounts.
	Index int
	Name  string
}

func (e *MountError) Error() string {
	return fmt.Sprintf("volume mount #%d: volume '%s' not found", e.Index, e.Name)
}

// Is makes a MountError match ErrNotFound.
func (e *MountError) Is(target error) bool { return target == ErrNotFound }

// VolumeInUseError names sandboxes (not all, when many) that still mount a volume;
// it is ErrInUse.
type VolumeInUseError struct {
	VolumeID  string
	Sandboxes []string
}

func (e *VolumeInUseError) Error() string {
	return fmt.Sprintf("volume %s is mounted by sandboxes %s", e.VolumeID, strings.Join(e.Sandboxes, ", "))
}

// Is makes a VolumeInUseError match ErrInUse.
func (e *VolumeInUseError) Is(target error) bool { return target == ErrInUse }

// volumeColumns is the column list read by scanVolume.
const volumeColumns = `id, team_id, name, size_mb, token_key, created_at`

func scanVolume(r scanner) (*Volume, error) {
	var (
		v       Volume
		created int64
	)
	if err := r.Scan(&v.ID, &v.TeamID, &v.Name, &v.SizeMB, &v.TokenKey, &created); err != nil {
		return nil, err
	}
	v.CreatedAt = decTime(created)
	return &v, nil
}

// InsertVolume stores a new volume, setting v.CreatedAt to now when zero. An
// invalid name, a size below 1 or an empty key is ErrInvalid; the same ID, or a
// name the team has already, ErrExists; an unknown team ErrNotFound.
func (db *DB) InsertVolume(ctx context.Context, v *Volume) error {
	if v == nil || v.ID == "" || v.TeamID == "" || v.TokenKey == "" {
		return fmt.Errorf("insert volume: ID, team and token key are required: %w", ErrInvalid)
	}
	if !ValidVolumeName(v.Name) {
		return fmt.Errorf("insert volume %s: name %q must be 1-%d of a-z, A-Z, 0-9, '_' and '-': %w", v.ID, v.Name, MaxVolumeNameLen, ErrInvalid)
	}
	if v.SizeMB < 1 {
		return fmt.Errorf("insert volume %s: size %d MB: %w", v.ID, v.SizeMB, ErrInvalid)
	}
	createdAt := v.CreatedAt
	if createdAt.IsZero() {
		createdAt = db.now().UTC()
	}
	created, err := encTime(createdAt)
	if err != nil {
		return fmt.Errorf("insert volume %s: %w", v.ID, err)
	}
	err = db.write(ctx, func(tx conn) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO volumes (`+volumeColumns+`) VALUES (?, ?, ?, ?, ?, ?)`,
			v.ID, v.TeamID, v.Name, v.SizeMB, v.TokenKey, created)
		switch {
		case isUniqueViolation(err):
			return ErrExists
		case isForeignKeyViolation(err):
			return fmt.Errorf("team %s: %w", v.TeamID, ErrNotFound)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("insert volume %s (%s): %w", v.ID, v.Name, err)
	}
	v.CreatedAt = decTime(created)
	return nil
}

// GetVolume returns the volume with this ID, or ErrNotFound.
func (db *DB) GetVolume(ctx context.Context, id string) (*Volume, error) {
	v, err := scanVolume(db.pool().QueryRowContext(ctx, `SELECT `+volumeColumns+` FROM volumes WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("get volume %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get volume %s: %w", id, err)
	}
	return v, nil
}

// ListVolumes returns team teamID's volumes ordered by name, or with teamID ""
// every team's, ordered by ID. The result is never nil.
func (db *DB) ListVolumes(ctx context.Context, teamID string) ([]*Volume, error) {
	q, args := `SELECT `+volumeColumns+` FROM volumes ORDER BY id`, []any(nil)
	if teamID != "" {
		q, args = `SELECT `+volumeColumns+` FROM volumes WHERE team_id = ? ORDER BY name`, []any{teamID}
	}
	rows, err := db.pool().QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list volumes: %w", err)
	}
	defer rows.Close()
	list := []*Volume{}
	for rows.Next() {
		v, err := scanVolume(rows)
		if err != nil {
			return nil, fmt.Errorf("list volumes: %w", err)
		}
		list = append(list, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list volumes: %w", err)
	}
	return list, nil
}

// DeleteVolume removes volume id, unless a sandbox that has not ended (killed or
// dead) mounts it: then it is a *VolumeInUseError (ErrInUse) and nothing changes.
// The mounts of ended sandboxes go with it. A missing volume is ErrNotFound.
func (db *DB) DeleteVolume(ctx context.Context, id string) error {
	err := db.write(ctx, func(tx conn) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM volumes WHERE id = ?`, id).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT DISTINCT s.id FROM sandbox_volume_mounts m
			JOIN sandboxes s ON s.id = m.sandbox_id
			WHERE m.volume_id = ? AND s.state NOT IN (?, ?) ORDER BY s.id LIMIT 10`, id, StateKilled, StateDead)
		if err != nil {
			return err
		}
		var users []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				rows.Close()
				return err
			}
			users = append(users, s)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(users) > 0 {
			return &VolumeInUseError{VolumeID: id, Sandboxes: users}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM sandbox_volume_mounts WHERE volume_id = ?`, id); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM volumes WHERE id = ?`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete volume %s: %w", id, err)
	}
	return nil
}

// insertVolumeMounts stores the mounts of the new sandbox s, each volume looked up
// in s's team: by VolumeID when given, else by Name (VolumeID is then filled in).
func insertVolumeMounts(ctx context.Context, tx conn, s *Sandbox) error {
	for i := range s.VolumeMounts {
		m := &s.VolumeMounts[i]
		q, arg := `SELECT id, name FROM volumes WHERE team_id = ? AND name = ?`, m.Name
		if m.VolumeID != "" {
			q, arg = `SELECT id, name FROM volumes WHERE team_id = ? AND id = ?`, m.VolumeID
		}
		err := tx.QueryRowContext(ctx, q, s.TeamID, arg).Scan(&m.VolumeID, &m.Name)
		if errors.Is(err, sql.ErrNoRows) {
			return &MountError{Index: i, Name: arg}
		}
		if err != nil {
			return fmt.Errorf("volume mount #%d: %w", i, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO sandbox_volume_mounts (sandbox_id, position, volume_id, path)
			VALUES (?, ?, ?, ?)`, s.ID, i, m.VolumeID, m.Path); err != nil {
			return fmt.Errorf("volume mount #%d: %w", i, err)
		}
	}
	return nil
}

// loadVolumeMounts fills in the VolumeMounts of items, with each volume's name.
func loadVolumeMounts(ctx context.Context, q conn, items ...*Sandbox) error {
	const chunk = 500
	for len(items) > 0 {
		n := min(len(items), chunk)
		part := items[:n]
		items = items[n:]
		byID := make(map[string]*Sandbox, len(part))
		args := make([]any, 0, len(part))
		for _, s := range part {
			byID[s.ID] = s
			args = append(args, s.ID)
		}
		rows, err := q.QueryContext(ctx, `SELECT m.sandbox_id, m.volume_id, v.name, m.path
			FROM sandbox_volume_mounts m JOIN volumes v ON v.id = m.volume_id
			WHERE m.sandbox_id IN (?`+strings.Repeat(", ?", len(args)-1)+`)
			ORDER BY m.sandbox_id, m.position`, args...)
		if err != nil {
			return fmt.Errorf("read volume mounts: %w", err)
		}
		for rows.Next() {
			var id string
			var m VolumeMount
			if err := rows.Scan(&id, &m.VolumeID, &m.Name, &m.Path); err != nil {
				rows.Close()
				return fmt.Errorf("read volume mounts: %w", err)
			}
			if s := byID[id]; s != nil {
				s.VolumeMounts = append(s.VolumeMounts, m)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read volume mounts: %w", err)
		}
	}
	return nil
}
