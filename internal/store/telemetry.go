package store

import (
	"context"
	"fmt"
	"math"
	"time"
)

// Metric is one resource usage sample of a sandbox. Sizes are in bytes.
type Metric struct {
	// Timestamp is when the sample was taken; InsertMetric uses now when
	// it is zero.
	Timestamp time.Time
	// CPUCount is the number of CPUs the sandbox has.
	CPUCount int
	// CPUUsedPct is the CPU use in percent of CPUCount CPUs.
	CPUUsedPct float64
	// MemUsed, MemTotal and MemCache describe memory; DiskUsed and
	// DiskTotal the root file system.
	MemUsed, MemTotal, MemCache, DiskUsed, DiskTotal int64
}

// Event is one lifecycle event line of a sandbox, kept by the control plane.
type Event struct {
	// Timestamp is when it happened; AppendEvent uses now when it is zero.
	Timestamp time.Time
	// Line is the event's text.
	Line string
}

// InsertMetric stores a sample for an existing sandbox; an unknown sandbox
// is ErrNotFound. The samples go when the sandbox is deleted or by
// DeleteMetricsBefore.
func (db *DB) InsertMetric(ctx context.Context, sandboxID string, m Metric) error {
	if m.Timestamp.IsZero() {
		m.Timestamp = db.now()
	}
	ts, err := encTime(m.Timestamp)
	if err == nil && (math.IsNaN(m.CPUUsedPct) || math.IsInf(m.CPUUsedPct, 0)) {
		err = fmt.Errorf("cpuUsedPct %v is not a number: %w", m.CPUUsedPct, ErrInvalid)
	}
	if err == nil {
		err = db.write(ctx, func(tx conn) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO sandbox_metrics (sandbox_id, ts, cpu_count,
				cpu_used_pct, mem_used, mem_total, mem_cache, disk_used, disk_total)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, sandboxID, ts, m.CPUCount, m.CPUUsedPct,
				m.MemUsed, m.MemTotal, m.MemCache, m.DiskUsed, m.DiskTotal)
			if isForeignKeyViolation(err) {
				return ErrNotFound
			}
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("insert metric of sandbox %s: %w", sandboxID, err)
	}
	return nil
}

// ListMetrics returns the sandbox's samples with start <= Timestamp <= end,
// oldest first; a zero start or end leaves that side unbounded. An unknown
// sandbox has no samples (no error). The result is never nil.
func (db *DB) ListMetrics(ctx context.Context, sandboxID string, start, end time.Time) ([]Metric, error) {
	from, to, err := timeRange(start, end)
	if err != nil {
		return nil, fmt.Errorf("list metrics of sandbox %s: %w", sandboxID, err)
	}
	rows, err := db.pool().QueryContext(ctx, `SELECT ts, cpu_count, cpu_used_pct, mem_used, mem_total,
		mem_cache, disk_used, disk_total FROM sandbox_metrics
		WHERE sandbox_id = ? AND ts >= ? AND ts <= ? ORDER BY ts, `+db.d.insertOrder(), sandboxID, from, to)
	if err != nil {
		return nil, fmt.Errorf("list metrics of sandbox %s: %w", sandboxID, err)
	}
	defer rows.Close()
	list := []Metric{}
	for rows.Next() {
		var (
			m  Metric
			ts int64
		)
		if err := rows.Scan(&ts, &m.CPUCount, &m.CPUUsedPct, &m.MemUsed, &m.MemTotal,
			&m.MemCache, &m.DiskUsed, &m.DiskTotal); err != nil {
			return nil, fmt.Errorf("list metrics of sandbox %s: %w", sandboxID, err)
		}
		m.Timestamp = decTime(ts)
		list = append(list, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list metrics of sandbox %s: %w", sandboxID, err)
	}
	return list, nil
}

// timeRange converts an inclusive range with optional (zero) bounds.
func timeRange(start, end time.Time) (from, to int64, err error) {
	from, to = math.MinInt64, math.MaxInt64
	if !start.IsZero() {
		if from, err = encTime(start); err != nil {
			return 0, 0, fmt.Errorf("start: %w", err)
		}
	}
	if !end.IsZero() {
		if to, err = encTime(end); err != nil {
			return 0, 0, fmt.Errorf("end: %w", err)
		}
	}
	return from, to, nil
}

// DeleteMetricsBefore deletes the samples of all sandboxes taken strictly
// before t and returns how many went.
func (db *DB) DeleteMetricsBefore(ctx context.Context, t time.Time) (int64, error) {
	before, err := encTime(t)
	if err != nil {
		return 0, fmt.Errorf("delete metrics before: %w", err)
	}
	var n int64
	err = db.write(ctx, func(tx conn) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM sandbox_metrics WHERE ts < ?`, before)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("delete metrics before %s: %w", t.Format(time.RFC3339Nano), err)
	}
	return n, nil
}

// AppendEvent stores an event for an existing sandbox; an unknown sandbox is
// ErrNotFound. Events go when the sandbox is deleted.
func (db *DB) AppendEvent(ctx context.Context, sandboxID string, e Event) error {
	if e.Timestamp.IsZero() {
		e.Timestamp = db.now()
	}
	ts, err := encTime(e.Timestamp)
	if err == nil {
		err = db.write(ctx, func(tx conn) error {
			_, err := tx.ExecContext(ctx,
				`INSERT INTO sandbox_events (sandbox_id, ts, line) VALUES (?, ?, ?)`, sandboxID, ts, e.Line)
			if isForeignKeyViolation(err) {
				return ErrNotFound
			}
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("append event of sandbox %s: %w", sandboxID, err)
	}
	return nil
}

// ListEvents returns up to limit (0 = all; negative is ErrInvalid) of the
// sandbox's events with Timestamp >= start (zero = from the first), oldest
// first, events with equal times in the order they were appended. An unknown
// sandbox has no events (no error). The result is never nil.
func (db *DB) ListEvents(ctx context.Context, sandboxID string, start time.Time, limit int) ([]Event, error) {
	if err := checkLimit(limit); err != nil {
		return nil, fmt.Errorf("list events of sandbox %s: %w", sandboxID, err)
	}
	from, _, err := timeRange(start, time.Time{})
	if err != nil {
		return nil, fmt.Errorf("list events of sandbox %s: %w", sandboxID, err)
	}
	q, args := `SELECT ts, line FROM sandbox_events WHERE sandbox_id = ? AND ts >= ? ORDER BY ts, `+db.d.insertOrder(),
		[]any{sandboxID, from}
	if limit > 0 {
		q, args = q+` LIMIT ?`, append(args, limit)
	}
	rows, err := db.pool().QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list events of sandbox %s: %w", sandboxID, err)
	}
	defer rows.Close()
	list := []Event{}
	for rows.Next() {
		var (
			e  Event
			ts int64
		)
		if err := rows.Scan(&ts, &e.Line); err != nil {
			return nil, fmt.Errorf("list events of sandbox %s: %w", sandboxID, err)
		}
		e.Timestamp = decTime(ts)
		list = append(list, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list events of sandbox %s: %w", sandboxID, err)
	}
	return list, nil
}
