package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// State is a sandbox lifecycle state. It is an alias of string so that the
// constants below fit Sandbox.State and SandboxFilter.States directly. The
// store accepts only these values but does not check transitions between
// them; that is the control plane's job.
type State = string

// The sandbox states.
const (
	StateStarting State = "starting"
	StateRunning  State = "running"
	StatePausing  State = "pausing"
	StatePaused   State = "paused"
	StateResuming State = "resuming"
	StateKilled   State = "killed"
	StateDead     State = "dead"
)

// States lists every valid State, in lifecycle order.
func States() []State {
	return []State{StateStarting, StateRunning, StatePausing, StatePaused, StateResuming, StateKilled, StateDead}
}

// ValidState reports whether s is one of the sandbox states.
func ValidState(s string) bool { return slices.Contains(States(), s) }

// Values of Sandbox.RuntimeClass and Sandbox.WorkloadType known today. The
// store does not restrict these fields.
const (
	RuntimeGVisor   = "gvisor"
	RuntimeRunc     = "runc"
	WorkloadCompute = "compute"
)

// Sandbox is one sandbox's stored record.
type Sandbox struct {
	// ID is the primary key: required, unique, never changed by updates.
	// (The control plane issues lower-case letters and digits; the store
	// does not check the alphabet.)
	ID string
	// TeamID is the owning team: required, and never changed by updates.
	TeamID string
	// TemplateID is the template's ID (name) the sandbox was created from.
	TemplateID string
	// Alias is the template alias the client used, or "".
	Alias string
	// ClientID identifies the client, as reported back in the API.
	ClientID string
	// RuntimeClass is the isolation used: RuntimeGVisor or RuntimeRunc.
	RuntimeClass string
	// WorkloadType is the kind of workload, WorkloadCompute today.
	WorkloadType string
	// State is one of the State constants; Insert and Update refuse any
	// other value with ErrInvalid. Transitions are not checked.
	State string
	// CPUCount, MemoryMB and DiskSizeMB are the resources granted.
	CPUCount, MemoryMB, DiskSizeMB int
	// Metadata is the client's metadata. Keys and values are arbitrary
	// strings. nil and an empty map are stored (and returned) distinctly.
	Metadata map[string]string
	// EnvVars are the sandbox's default environment variables; nil and
	// empty are kept apart like Metadata.
	EnvVars map[string]string
	// EnvdVersion is the semver of the in-sandbox daemon's protocol.
	EnvdVersion string
	// EnvdAccessToken is the token the daemon requires (X-Access-Token).
	EnvdAccessToken string
	// TrafficAccessToken guards public traffic to the sandbox's ports, or "".
	TrafficAccessToken string
	// AllowInternetAccess is the client's choice; nil means not given.
	AllowInternetAccess *bool
	// Network is the network configuration as the client sent it, or nil.
	// When not nil it must be valid JSON (else ErrInvalid); it is returned
	// byte for byte.
	Network json.RawMessage
	// AutoPause: pause instead of kill at EndAt.
	AutoPause bool
	// AutoResume: resume a paused sandbox when traffic reaches it.
	AutoResume bool
	// StartedAt is when the sandbox (last) started; listing orders by
	// (StartedAt, ID), so changing it moves the sandbox between pages.
	StartedAt time.Time
	// EndAt is when the sandbox times out (of a paused one, the control
	// plane keeps when it was paused); ListDue pages through the sandboxes
	// of a state whose EndAt is at or before a time (a zero EndAt is due at
	// once).
	EndAt time.Time
	// NodeID is the node agent that holds the sandbox, or "".
	NodeID string
	// Address is where the sandbox's ports are reached on that node.
	Address string
	// EndReason is why the sandbox ended (killed, dead), else "".
	EndReason string
	// VolumeMounts are the volumes mounted into the sandbox, in order. Insert
	// looks each up in the sandbox's team, by VolumeID or else by Name (then
	// filling in VolumeID), and refuses an unknown one with a *MountError
	// (ErrNotFound); UpdateSandbox leaves them as they are. Reads give each
	// volume's name.
	VolumeMounts []VolumeMount
	// CreatedAt is set once by InsertSandbox (to now when zero) and never
	// changed by UpdateSandbox.
	CreatedAt time.Time
	// UpdatedAt is set to now by InsertSandbox and every UpdateSandbox.
	UpdatedAt time.Time
	// Version is 1 after InsertSandbox and is incremented by every
	// successful UpdateSandbox, which only succeeds when the caller's
	// Version equals the stored one (optimistic concurrency).
	Version int64
}

// sandboxColumns is the column list read by scanSandbox, in its order.
const sandboxColumns = `s.id, s.team_id, s.template_id, s.alias, s.client_id, s.runtime_class, s.workload_type,
	s.state, s.cpu_count, s.memory_mb, s.disk_size_mb, s.metadata, s.env_vars, s.envd_version,
	s.envd_access_token, s.traffic_access_token, s.allow_internet_access, s.network,
	s.auto_pause, s.auto_resume, s.started_at, s.end_at, s.node_id, s.address, s.end_reason,
	s.created_at, s.updated_at, s.version`

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// scanSandbox reads one row selected with sandboxColumns.
func scanSandbox(r scanner) (*Sandbox, error) {
	var (
		s                              Sandbox
		metadata, envVars              string
		allowInternet                  sql.NullBool
		network                        sql.NullString
		started, end, created, updated int64
	)
	if err := r.Scan(&s.ID, &s.TeamID, &s.TemplateID, &s.Alias, &s.ClientID, &s.RuntimeClass, &s.WorkloadType,
		&s.State, &s.CPUCount, &s.MemoryMB, &s.DiskSizeMB, &metadata, &envVars, &s.EnvdVersion,
		&s.EnvdAccessToken, &s.TrafficAccessToken, &allowInternet, &network,
		&s.AutoPause, &s.AutoResume, &started, &end, &s.NodeID, &s.Address, &s.EndReason,
		&created, &updated, &s.Version); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(metadata), &s.Metadata); err != nil {
		return nil, fmt.Errorf("decode metadata of sandbox %s: %w", s.ID, err)
	}
	if err := json.Unmarshal([]byte(envVars), &s.EnvVars); err != nil {
		return nil, fmt.Errorf("decode env vars of sandbox %s: %w", s.ID, err)
	}
	if allowInternet.Valid {
		v := allowInternet.Bool
		s.AllowInternetAccess = &v
	}
	if network.Valid {
		s.Network = json.RawMessage(network.String)
	}
	s.StartedAt, s.EndAt = decTime(started), decTime(end)
	s.CreatedAt, s.UpdatedAt = decTime(created), decTime(updated)
	return &s, nil
}

// sandboxRow is a Sandbox converted to column values, validated.
type sandboxRow struct {
	metadata, envVars              string
	allowInternet, network         any
	started, end, created, updated int64
}

// encodeSandbox validates s and converts the fields that need it.
func encodeSandbox(s *Sandbox, created, updated time.Time) (*sandboxRow, error) {
	if s == nil {
		return nil, fmt.Errorf("nil sandbox: %w", ErrInvalid)
	}
	if s.ID == "" {
		return nil, fmt.Errorf("empty sandbox ID: %w", ErrInvalid)
	}
	if s.TeamID == "" {
		return nil, fmt.Errorf("sandbox %s: empty team ID: %w", s.ID, ErrInvalid)
	}
	if !ValidState(s.State) {
		return nil, fmt.Errorf("sandbox %s: unknown state %q: %w", s.ID, s.State, ErrInvalid)
	}
	var r sandboxRow
	md, err := json.Marshal(s.Metadata)
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: encode metadata: %w", s.ID, err)
	}
	ev, err := json.Marshal(s.EnvVars)
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: encode env vars: %w", s.ID, err)
	}
	r.metadata, r.envVars = string(md), string(ev)
	if s.AllowInternetAccess != nil {
		r.allowInternet = *s.AllowInternetAccess
	}
	if s.Network != nil {
		if !json.Valid(s.Network) {
			return nil, fmt.Errorf("sandbox %s: network is not valid JSON: %w", s.ID, ErrInvalid)
		}
		r.network = string(s.Network)
	}
	for _, t := range []struct {
		dst *int64
		t   time.Time
	}{{&r.started, s.StartedAt}, {&r.end, s.EndAt}, {&r.created, created}, {&r.updated, updated}} {
		if *t.dst, err = encTime(t.t); err != nil {
			return nil, fmt.Errorf("sandbox %s: %w", s.ID, err)
		}
	}
	return &r, nil
}

// InsertSandbox stores a new sandbox. On success it sets s.Version to 1,
// s.CreatedAt to now when it was zero, and s.UpdatedAt to s.CreatedAt. A
// sandbox with the same ID is ErrExists, one of an unknown team ErrNotFound.
// It checks no quota: see InsertSandboxWithin.
func (db *DB) InsertSandbox(ctx context.Context, s *Sandbox) error {
	return db.insertSandbox(ctx, s, nil)
}

// InsertSandboxWithin is InsertSandbox for a new sandbox in a state that
// holds resources (starting, running, pausing, resuming): in the same
// transaction it checks that the team's running sandboxes, with this one,
// stay within the team's quotas (defaults for those the team has not set),
// and refuses with a *QuotaError (ErrQuota) otherwise.
func (db *DB) InsertSandboxWithin(ctx context.Context, s *Sandbox, defaults Quotas) error {
	return db.insertSandbox(ctx, s, &defaults)
}

// insertSandbox inserts s, checking quotas when defaults is not nil.
func (db *DB) insertSandbox(ctx context.Context, s *Sandbox, defaults *Quotas) error {
	created := time.Time{}
	if s != nil {
		created = s.CreatedAt
	}
	if created.IsZero() {
		created = db.now().UTC()
	}
	r, err := encodeSandbox(s, created, created)
	if err != nil {
		return fmt.Errorf("insert sandbox: %w", err)
	}
	err = db.write(ctx, func(tx conn) error {
		if defaults != nil && holdsResources(s.State) {
			if err := admitSandboxTx(ctx, tx, s, *defaults); err != nil {
				return err
			}
		}
		return insertSandboxTx(ctx, tx, s, r)
	})
	if err != nil {
		return fmt.Errorf("insert sandbox %s: %w", s.ID, err)
	}
	s.Version = 1
	s.CreatedAt, s.UpdatedAt = decTime(r.created), decTime(r.updated)
	return nil
}

// insertSandboxTx inserts s, encoded as r by encodeSandbox, and its metadata.
func insertSandboxTx(ctx context.Context, tx conn, s *Sandbox, r *sandboxRow) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO sandboxes (id, team_id, template_id, alias, client_id,
		runtime_class, workload_type, state, cpu_count, memory_mb, disk_size_mb, metadata, env_vars,
		envd_version, envd_access_token, traffic_access_token, allow_internet_access, network,
		auto_pause, auto_resume, started_at, end_at, node_id, address, end_reason, created_at,
		updated_at, version)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)`,
		s.ID, s.TeamID, s.TemplateID, s.Alias, s.ClientID, s.RuntimeClass, s.WorkloadType, s.State,
		s.CPUCount, s.MemoryMB, s.DiskSizeMB, r.metadata, r.envVars, s.EnvdVersion,
		s.EnvdAccessToken, s.TrafficAccessToken, r.allowInternet, r.network, s.AutoPause,
		s.AutoResume, r.started, r.end, s.NodeID, s.Address, s.EndReason, r.created, r.updated,
	); err != nil {
		if isUniqueViolation(err) {
			return ErrExists
		}
		if isForeignKeyViolation(err) {
			return fmt.Errorf("team %s: %w", s.TeamID, ErrNotFound)
		}
		return err
	}
	if err := insertMetadata(ctx, tx, s, r.started); err != nil {
		return err
	}
	return insertVolumeMounts(ctx, tx, s)
}

// insertMetadata writes the metadata side table rows of sandbox s, which
// carry a copy of its team and its started_at (the list order).
func insertMetadata(ctx context.Context, tx conn, s *Sandbox, startedAt int64) error {
	if len(s.Metadata) == 0 {
		return nil
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO sandbox_metadata (sandbox_id, key, value, team_id, started_at) VALUES (?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("prepare metadata insert: %w", err)
	}
	defer stmt.Close()
	for k, v := range s.Metadata {
		if _, err := stmt.ExecContext(ctx, s.ID, k, v, s.TeamID, startedAt); err != nil {
			return fmt.Errorf("insert metadata %q: %w", k, err)
		}
	}
	return nil
}

// GetSandbox returns the sandbox with the given ID, or ErrNotFound.
func (db *DB) GetSandbox(ctx context.Context, id string) (*Sandbox, error) {
	s, err := scanSandbox(db.pool().QueryRowContext(ctx,
		`SELECT `+sandboxColumns+` FROM sandboxes s WHERE s.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("get sandbox %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get sandbox %s: %w", id, err)
	}
	if err := loadVolumeMounts(ctx, db.pool(), s); err != nil {
		return nil, fmt.Errorf("get sandbox %s: %w", id, err)
	}
	return s, nil
}
