package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// SandboxLifecycle holds the lifecycle settings of a sandbox beyond its row's
// AutoPause and AutoResume.
type SandboxLifecycle struct {
	// AutoPauseMemory: a pause at the end time keeps the memory; false keeps only
	// the files.
	AutoPauseMemory bool
	// Timeout is the lifetime the sandbox was created with (0: the server's
	// default); a resume by traffic gives it that long again.
	Timeout time.Duration
	// PausedMemory: the sandbox's last pause kept its memory.
	PausedMemory bool
	// KeptImage is the content address of the image of the sandbox's last
	// pause that the control plane keeps, so that another node can resume
	// it ("" for none).
	KeptImage string
}

// defaultLifecycle is the lifecycle of a sandbox that has none stored: pauses keep
// the memory.
func defaultLifecycle() SandboxLifecycle {
	return SandboxLifecycle{AutoPauseMemory: true, PausedMemory: true}
}

// PutSandboxLifecycle stores l for sandbox id, replacing what it had; an unknown
// sandbox is ErrNotFound.
func (db *DB) PutSandboxLifecycle(ctx context.Context, id string, l SandboxLifecycle) error {
	if l.Timeout < 0 {
		return fmt.Errorf("put lifecycle of sandbox %s: negative timeout: %w", id, ErrInvalid)
	}
	err := db.write(ctx, func(tx conn) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO sandbox_lifecycle (sandbox_id, auto_pause_memory, timeout, paused_memory, kept_image)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT (sandbox_id) DO UPDATE SET auto_pause_memory = excluded.auto_pause_memory,
			timeout = excluded.timeout, paused_memory = excluded.paused_memory, kept_image = excluded.kept_image`,
			id, l.AutoPauseMemory, int64(l.Timeout), l.PausedMemory, l.KeptImage)
		if isForeignKeyViolation(err) {
			return ErrNotFound
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("put lifecycle of sandbox %s: %w", id, err)
	}
	return nil
}

// SandboxLifecycleOf returns the lifecycle of sandbox id: the defaults when it
// has none stored (or the sandbox is unknown): pauses keep the memory, the
// server's default timeout.
func (db *DB) SandboxLifecycleOf(ctx context.Context, id string) (SandboxLifecycle, error) {
	var (
		l       SandboxLifecycle
		timeout int64
	)
	err := db.read(ctx, func(tx conn) error {
		return tx.QueryRowContext(ctx, `SELECT auto_pause_memory, timeout, paused_memory, kept_image FROM sandbox_lifecycle
			WHERE sandbox_id = ?`, id).Scan(&l.AutoPauseMemory, &timeout, &l.PausedMemory, &l.KeptImage)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return defaultLifecycle(), nil
	}
	if err != nil {
		return SandboxLifecycle{}, fmt.Errorf("lifecycle of sandbox %s: %w", id, err)
	}
	l.Timeout = time.Duration(timeout)
	return l, nil
}
