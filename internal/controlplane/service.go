// Package controlplane holds the rules of the sandbox lifecycle: creating a
// sandbox from a template on a node, its end time (timeout, refresh,
// connect), pause and resume (with memory or the files only, and by traffic),
// forks and snapshots, kill, the reaper that ends sandboxes whose time
// is up, the metrics sampler, the reconciliation with the node after a
// restart, teams, API keys and quotas, and the resolver the traffic proxy
// asks where a sandbox lives. Every change to one sandbox runs under that
// sandbox's lock, so concurrent calls on one sandbox happen one after another
// and each sees the result of the previous one.
//
// Tenancy: every sandbox, template and build belongs to a team, and every
// method called for an API client takes the caller's team ID and acts only on
// that team's objects (and public templates). Another team's sandbox or build
// is ErrNotFound with the same message as an unknown ID, so IDs leak nothing.
package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	agentv1 "lelantos.dev/lelantos/internal/gen/agent/v1"
	"lelantos.dev/lelantos/internal/store"
)

// Fixed values of this version.
const (
	// ClientID is reported as every sandbox's (deprecated) clientID.
	ClientID = "lelantos"
	// WorkloadType is reported as every sandbox's workloadType.
	WorkloadType = store.WorkloadCompute
	// DefaultHeartbeatInterval is how often nodes report when
	// Config.HeartbeatInterval does not say.
	DefaultHeartbeatInterval = 5 * time.Second
	// LocalNodeID names the one node of a single-machine installation.
	LocalNodeID = "local"
	// DefaultEnvdVersion is reported when a template does not record the
	// version of its in-sandbox daemon.
	DefaultEnvdVersion = "0.6.4"
	// DefaultTemplate is used when a create request names no template.
	DefaultTemplate = "base"
	// DefaultPausedRetention is how long a sandbox may stay paused unless
	// Config.PausedRetention says otherwise.
	DefaultPausedRetention = 30 * 24 * time.Hour
	// PausedForever, as Config.PausedRetention, keeps paused sandboxes until
	// they are killed.
	PausedForever time.Duration = -1
	// RuntimeGVisor and RuntimeRunc are the runtime classes a sandbox may
	// ask for; gVisor is the default.
	RuntimeGVisor = store.RuntimeGVisor
	RuntimeRunc   = store.RuntimeRunc
)

// Sandbox states as stored. Clients only ever see "running" and "paused":
// starting and resuming are shown as running, pausing as paused, and dead
// sandboxes (a failed start, lost by the node) as not found.
const (
	StateStarting = store.StateStarting
	StateRunning  = store.StateRunning
	StatePausing  = store.StatePausing
	StatePaused   = store.StatePaused
	StateResuming = store.StateResuming
	StateKilled   = store.StateKilled
	StateDead     = store.StateDead
)

// Service runs the sandbox lifecycle against a store and a node. It is safe
// for concurrent use.
type Service struct {
	cfg   Config
	store Store
	node  Node
	log   *slog.Logger
	locks *opLocks
	// replica names this Service among the replicas sharing its store.
	replica string
	// runMu makes Run exclusive: one reaper and one sampler per Service.
	runMu sync.Mutex
	// nodeAddrs caches remote nodes' addresses for remoteAddress.
	nodeAddrs nodeAddrs
}

// New returns a Service using st for state and node, its own node, for
// sandboxes; node may be nil when cfg.Remote reaches nodes elsewhere.
func New(cfg Config, st Store, node Node) (*Service, error) {
	if st == nil || (node == nil && cfg.Remote == nil) {
		return nil, errors.New("new control plane: a store, and a node or remote nodes, are required")
	}
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("new control plane: %w", err)
	}
	replica := replicaID()
	locks := &opLocks{local: newKeyedMutex(), leases: st, holder: replica, ttl: cfg.LeaseTTL, log: cfg.Logger}
	return &Service{cfg: cfg, store: observeQuotas(st, cfg.Observer), node: node, log: cfg.Logger, locks: locks,
		replica: replica}, nil
}

// Domain is the domain clients reach sandboxes under ("" when none).
func (s *Service) Domain() string { return s.cfg.Domain }

// MaxTimeout is the longest timeout a request may ask for.
func (s *Service) MaxTimeout() time.Duration { return s.cfg.MaxTimeout }

// now is the Service's clock, in UTC.
func (s *Service) now() time.Time { return s.cfg.Clock().UTC() }

// nodeCtx detaches a node call that changes a sandbox from the request's
// cancellation (a client hanging up must not leave a half-made pause) and
// bounds it by NodeTimeout.
func (s *Service) nodeCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), s.cfg.NodeTimeout)
}

// lock takes sandbox id's lock, giving up when ctx ends.
func (s *Service) lock(ctx context.Context, id string) (func(), error) {
	unlock, err := s.locks.lock(ctx, id)
	if err != nil {
		return nil, &Error{Kind: ErrUnavailable, Message: "wait for sandbox " + id, Cause: err}
	}
	return unlock, nil
}

// getLive reads sandbox id, treating unknown IDs and dead sandboxes alike as
// not found.
func (s *Service) getLive(ctx context.Context, id string) (*store.Sandbox, error) {
	if !validSandboxID(id) {
		return nil, notFound(id)
	}
	sb, err := s.store.GetSandbox(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (sb.State == StateDead || sb.State == StateKilled)) {
		return nil, notFound(id)
	}
	if err != nil {
		return nil, internal("read sandbox", err)
	}
	return sb, nil
}

// save writes sb (compare-and-swap on its Version); the caller holds its lock.
func (s *Service) save(ctx context.Context, sb *store.Sandbox) error {
	if err := s.store.UpdateSandbox(context.WithoutCancel(ctx), sb); err != nil {
		return internal("update sandbox", err)
	}
	return nil
}

// event appends a lifecycle line to sandbox id's log. Failing to record it
// does not fail the operation; it is logged.
func (s *Service) event(ctx context.Context, id, format string, args ...any) {
	e := store.Event{Timestamp: s.now(), Line: fmt.Sprintf(format, args...)}
	if err := s.store.AppendEvent(context.WithoutCancel(ctx), id, e); err != nil {
		s.log.Warn("record sandbox event", "sandbox", id, "err", err)
	}
}

// markDead records that sb ended on its own (a failed start, lost by the
// node); the record stays for DeadRetention so that its logs can be read.
func (s *Service) markDead(ctx context.Context, sb *store.Sandbox, reason string) {
	sb.State = StateDead
	sb.EndReason = reason
	sb.Address = ""
	sb.EndAt = s.now()
	if err := s.save(ctx, sb); err != nil {
		s.log.Error("record dead sandbox", "sandbox", sb.ID, "reason", reason, "err", err)
		return
	}
	s.event(ctx, sb.ID, "sandbox died: %s", reason)
}

// isRunningState reports states clients see as "running".
func isRunningState(state string) bool {
	return state == StateRunning || state == StateStarting || state == StateResuming
}

// spec is what the node needs to (re)build sb: tpl (nil when the template is
// gone) and its details d, with the sandbox's own variables over the
// template's.
func spec(sb *store.Sandbox, tpl *store.Template, d TemplateDetails) *agentv1.SandboxSpec {
	sp := &agentv1.SandboxSpec{
		SandboxId:           sb.ID,
		TemplateId:          sb.TemplateID,
		RuntimeClass:        sb.RuntimeClass,
		CpuCount:            int32(sb.CPUCount),
		MemoryMb:            int32(sb.MemoryMB),
		DiskSizeMb:          int32(sb.DiskSizeMB),
		EnvVars:             mergeEnv(d.Env, sb.EnvVars),
		EnvdAccessToken:     sb.EnvdAccessToken,
		AllowInternetAccess: sb.AllowInternetAccess == nil || *sb.AllowInternetAccess,
		DefaultUser:         d.DefaultUser,
		DefaultWorkdir:      d.DefaultWorkdir,
		StartCmd:            d.StartCmd,
		TemplateRootfs:      d.Rootfs,
		VolumeMounts:        specVolumeMounts(sb.VolumeMounts),
	}
	// The egress rules decide internet access too (allow_internet_access false
	// with allowed addresses opens those).
	sp.AllowInternetAccess, sp.Egress = nodeNetwork(sb)
	if tpl != nil {
		if sp.TemplateRootfs == "" {
			sp.TemplateRootfs = tpl.RootfsPath
		}
		if sp.StartCmd == "" {
			sp.StartCmd = tpl.StartCmd
		}
	}
	// Only gVisor restores snapshots. Another runtime would start cold, and the
	// engine runs a start command only when there is no snapshot to restore,
	// so runc sandboxes get the start command without the snapshot.
	if sb.RuntimeClass == RuntimeGVisor || sb.RuntimeClass == "" {
		sp.SnapshotImage = d.SnapshotImage
	}
	return sp
}

// rawJSON returns r or nil when it is empty or JSON null.
func rawJSON(r json.RawMessage) json.RawMessage {
	if len(r) == 0 || string(r) == "null" {
		return nil
	}
	return r
}
