package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// UpdateSandbox replaces every field of the stored sandbox s.ID except
// CreatedAt and TeamID, provided the stored Version still equals s.Version;
// then it sets s.Version to the new version and s.UpdatedAt to now. A
// missing sandbox is ErrNotFound, a stale s.Version is ErrConflict (and
// nothing is written). It checks no quota: see UpdateSandboxWithin.
func (db *DB) UpdateSandbox(ctx context.Context, s *Sandbox) error {
	return db.updateSandbox(ctx, s, nil)
}

// UpdateSandboxWithin is UpdateSandbox for a sandbox that moves into a state
// that holds resources (a paused sandbox resuming): in the same transaction
// it checks the team's quotas as InsertSandboxWithin does, counting the
// team's other running sandboxes, and refuses with a *QuotaError (ErrQuota).
func (db *DB) UpdateSandboxWithin(ctx context.Context, s *Sandbox, defaults Quotas) error {
	return db.updateSandbox(ctx, s, &defaults)
}

// updateSandbox updates s, checking quotas when defaults is not nil.
func (db *DB) updateSandbox(ctx context.Context, s *Sandbox, defaults *Quotas) error {
	updated := db.now().UTC()
	r, err := encodeSandbox(s, time.Time{}, updated)
	if err != nil {
		return fmt.Errorf("update sandbox: %w", err)
	}
	err = db.write(ctx, func(tx conn) error {
		// The stored team counts, not the caller's copy: TeamID never changes.
		var (
			team    string
			version int64
		)
		err := tx.QueryRowContext(ctx, `SELECT team_id, version FROM sandboxes WHERE id = ?`, s.ID).Scan(&team, &version)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if version != s.Version {
			return fmt.Errorf("version %d is stale: %w", s.Version, ErrConflict)
		}
		stored := *s
		stored.TeamID = team
		if defaults != nil && holdsResources(s.State) {
			if err := admitSandboxTx(ctx, tx, &stored, *defaults); err != nil {
				return err
			}
		}
		// The version check is repeated in the statement, so that the
		// update is a compare-and-swap even where reads do not lock.
		res, err := tx.ExecContext(ctx, `UPDATE sandboxes SET template_id = ?, alias = ?,
			client_id = ?, runtime_class = ?, workload_type = ?, state = ?, cpu_count = ?,
			memory_mb = ?, disk_size_mb = ?, metadata = ?, env_vars = ?, envd_version = ?,
			envd_access_token = ?, traffic_access_token = ?, allow_internet_access = ?, network = ?,
			auto_pause = ?, auto_resume = ?, started_at = ?, end_at = ?, node_id = ?, address = ?,
			end_reason = ?, updated_at = ?, version = version + 1
			WHERE id = ? AND version = ?`,
			s.TemplateID, s.Alias, s.ClientID, s.RuntimeClass, s.WorkloadType, s.State,
			s.CPUCount, s.MemoryMB, s.DiskSizeMB, r.metadata, r.envVars, s.EnvdVersion,
			s.EnvdAccessToken, s.TrafficAccessToken, r.allowInternet, r.network, s.AutoPause,
			s.AutoResume, r.started, r.end, s.NodeID, s.Address, s.EndReason, r.updated,
			s.ID, s.Version)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("version %d is stale: %w", s.Version, ErrConflict)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM sandbox_metadata WHERE sandbox_id = ?`, s.ID); err != nil {
			return fmt.Errorf("clear metadata: %w", err)
		}
		return insertMetadata(ctx, tx, &stored, r.started)
	})
	if err != nil {
		return fmt.Errorf("update sandbox %s: %w", s.ID, err)
	}
	s.Version++
	s.UpdatedAt = decTime(r.updated)
	return nil
}

// DeleteSandbox removes the sandbox and, with it, its metadata, metrics and
// events. A missing sandbox is ErrNotFound.
func (db *DB) DeleteSandbox(ctx context.Context, id string) error {
	err := db.writeOne(ctx, `DELETE FROM sandboxes WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("delete sandbox %s: %w", id, err)
	}
	return nil
}
