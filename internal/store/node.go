package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Node statuses an operator sets (SetNodeStatus).
const (
	// NodeReady nodes take new sandboxes; a node's first heartbeat makes it so.
	NodeReady = "ready"
	// NodeDraining nodes take no new sandboxes; those they hold go on.
	NodeDraining = "draining"
)

// Node is one node the control plane reaches, as its last heartbeat left it.
type Node struct {
	// ID names the node.
	ID string
	// Status is NodeReady or NodeDraining, as the operator set it.
	Status string
	// Address is host:port of the node's agent as it last reported it; ""
	// for a node running in the control plane's process.
	Address string
	// Report is what the node reported at its last heartbeat: JSON the
	// control plane writes and reads; the store keeps it as it is.
	Report []byte
	// HeartbeatAt is when that was, CreatedAt when the first one was.
	HeartbeatAt, CreatedAt time.Time
	// Silence is how long ago the last heartbeat was, by the database's
	// clock (the one every replica shares).
	Silence time.Duration
}

// PutNodeHeartbeat records a heartbeat of node id, reached at address ("" for
// none), with its report, a JSON document, at the database's time: the
// node's row is made on its first.
// Heartbeats do not wait for the disk where the dialect allows it: a lost
// one is replaced by the next.
func (db *DB) PutNodeHeartbeat(ctx context.Context, id, address string, report []byte) error {
	if id == "" || len(report) == 0 {
		return fmt.Errorf("put heartbeat of node %q: a node ID and a report are required: %w", id, ErrInvalid)
	}
	now := db.d.nowNanos()
	err := db.writeAs(ctx, true, func(tx conn) error {
		// One reading of the clock for both times (WHERE true: SQLite would
		// read ON CONFLICT as a join's ON).
		_, err := tx.ExecContext(ctx, `INSERT INTO nodes (id, status, address, report, heartbeat_at, created_at)
			SELECT ?, ?, ?, ?, t, t FROM (SELECT `+now+` AS t) AS clock WHERE true
			ON CONFLICT (id) DO UPDATE SET address = excluded.address, report = excluded.report,
				heartbeat_at = excluded.heartbeat_at`,
			id, NodeReady, address, string(report))
		return err
	})
	if err != nil {
		return fmt.Errorf("put heartbeat of node %q: %w", id, err)
	}
	return nil
}

// nodeColumns are the columns scanNode reads, in its order.
func (db *DB) nodeColumns() string {
	return `id, status, address, report, heartbeat_at, created_at, ` + db.d.nowNanos() + ` - heartbeat_at`
}

// scanNode reads one row of nodeColumns.
func scanNode(row interface{ Scan(...any) error }) (*Node, error) {
	var (
		n                  Node
		report             string
		beat, made, silent int64
	)
	if err := row.Scan(&n.ID, &n.Status, &n.Address, &report, &beat, &made, &silent); err != nil {
		return nil, err
	}
	n.Report, n.HeartbeatAt, n.CreatedAt = []byte(report), decTime(beat), decTime(made)
	n.Silence = time.Duration(max(silent, 0))
	return &n, nil
}

// GetNode returns node id; one that never sent a heartbeat is ErrNotFound.
func (db *DB) GetNode(ctx context.Context, id string) (*Node, error) {
	n, err := scanNode(db.pool().QueryRowContext(ctx, `SELECT `+db.nodeColumns()+` FROM nodes WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("get node %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get node %q: %w", id, err)
	}
	return n, nil
}

// ListNodes returns every node that ever sent a heartbeat, by ID.
func (db *DB) ListNodes(ctx context.Context) ([]*Node, error) {
	rows, err := db.pool().QueryContext(ctx, `SELECT `+db.nodeColumns()+` FROM nodes ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	defer rows.Close()
	var out []*Node
	for rows.Next() {
		n, err := scanNode(rows)
		if err != nil {
			return nil, fmt.Errorf("list nodes: %w", err)
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	return out, nil
}

// SetNodeStatus sets the status of node id to NodeReady or NodeDraining; a
// node never heard from is ErrNotFound, another status ErrInvalid.
func (db *DB) SetNodeStatus(ctx context.Context, id, status string) error {
	if status != NodeReady && status != NodeDraining {
		return fmt.Errorf("set status of node %q: status %q is not %q or %q: %w", id, status, NodeReady, NodeDraining, ErrInvalid)
	}
	err := db.write(ctx, func(tx conn) error {
		res, err := tx.ExecContext(ctx, `UPDATE nodes SET status = ? WHERE id = ?`, status, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return errors.Join(err, ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("set status of node %q: %w", id, err)
	}
	return nil
}

// NodeLoad is what a node's live sandboxes commit of it, as the store
// records them: the sandboxes starting, running, pausing or resuming there.
type NodeLoad struct {
	Sandboxes int
	CPUs      int
	MemoryMB  int64
}

// NodeLoads returns the load of every node that holds a live sandbox, by
// node ID. It reads the sandboxes' own rows, so every replica sees a create
// the moment it is stored, before any node reports it.
func (db *DB) NodeLoads(ctx context.Context) (map[string]NodeLoad, error) {
	rows, err := db.pool().QueryContext(ctx, `SELECT node_id, COUNT(*), COALESCE(SUM(cpu_count), 0), COALESCE(SUM(memory_mb), 0)
		FROM sandboxes WHERE state IN (?, ?, ?, ?) GROUP BY node_id`, StateStarting, StateRunning, StatePausing, StateResuming)
	if err != nil {
		return nil, fmt.Errorf("node loads: %w", err)
	}
	defer rows.Close()
	out := map[string]NodeLoad{}
	for rows.Next() {
		var (
			id string
			l  NodeLoad
		)
		if err := rows.Scan(&id, &l.Sandboxes, &l.CPUs, &l.MemoryMB); err != nil {
			return nil, fmt.Errorf("node loads: %w", err)
		}
		out[id] = l
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("node loads: %w", err)
	}
	return out, nil
}
