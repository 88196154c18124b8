package controlplane

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"go.opentelemetry.io/otel/trace"

	"lelantos.dev/lelantos/internal/store"
)

// Config tunes a Service. Zero fields take the defaults documented on them.
type Config struct {
	// Domain is returned to clients as the sandboxes' domain; empty means
	// none (JSON null), for clients that use E2B_SANDBOX_URL.
	Domain string
	// DefaultCPU, DefaultMemoryMB and DefaultDiskSizeMB size a sandbox whose
	// template does not say: 2 CPUs, 512 MB, 2048 MB.
	DefaultCPU        int
	DefaultMemoryMB   int
	DefaultDiskSizeMB int
	// DefaultTimeout is a sandbox's lifetime when a request gives none: 300 s.
	DefaultTimeout time.Duration
	// MaxTimeout is the longest timeout a request may ask for: 24 h. Longer
	// ones are refused with 400.
	MaxTimeout time.Duration
	// ReaperInterval is how often sandboxes past their end time are killed
	// or paused: 1 s.
	ReaperInterval time.Duration
	// MetricsInterval is how often running sandboxes' metrics are sampled:
	// 5 s.
	MetricsInterval time.Duration
	// MetricsRetention is how long samples are kept: 24 h.
	MetricsRetention time.Duration
	// DeadRetention is how long the record (and logs) of a sandbox that died
	// on its own, or that the control plane ended (a paused sandbox past
	// PausedRetention), is kept: 1 h.
	DeadRetention time.Duration
	// PausedRetention is how long a sandbox may stay paused: past it, the
	// reaper kills it, which removes its checkpoint on the node. 30 days
	// when 0; PausedForever keeps paused sandboxes until they are killed.
	// The time counts from the pause (or a later change of the sandbox's
	// timeout).
	PausedRetention time.Duration
	// RepairInterval is how often sandboxes stuck in a transitional state
	// (starting, pausing, resuming) are checked against the node: 1 min. A
	// sandbox is repaired once it has stayed unchanged, with no operation on
	// it, for twice NodeTimeout.
	RepairInterval time.Duration
	// LeaseTTL is how long this replica's hold on a store lease lasts
	// without renewal: the lock of an operation on a sandbox, or the
	// background duties (reaper, sampler, repair, sweeps), which one replica
	// of those sharing the store runs at a time. Holders renew at a third of
	// it; when a replica dies, the others take over within it: 15 s.
	LeaseTTL time.Duration
	// HeartbeatInterval is how often each replica asks its node for its
	// report and stores it as the node's heartbeat: 5 s.
	HeartbeatInterval time.Duration
	// NodeLostAfter is how long a node may stay silent before it is
	// reported unhealthy: three heartbeats (15 s by default).
	NodeLostAfter time.Duration
	// NodeTimeout bounds one call to the node: 2 min. Node calls that change
	// a sandbox are not cancelled when the client goes away.
	NodeTimeout time.Duration
	// Clock returns the current time; time.Now by default (tests fake it).
	Clock func() time.Time
	// Logger receives operational messages; slog.Default() by default.
	Logger *slog.Logger
	// Templates gives the node's details of built templates (default user
	// and workdir, environment, start command, snapshot) for new sandboxes;
	// nil means none, as for templates registered directly in the store.
	Templates TemplateSource
	// Remote reaches the nodes that report to this control plane from their
	// own machines; nil: the Service's own node is the only one.
	Remote RemoteNodes
	// Artifacts names the trees of templates for remote nodes, which fetch
	// them by name (nil: remote nodes get the paths, so they must share this
	// machine's file system).
	Artifacts Artifacts
	// Images keeps the images of sandboxes paused on remote nodes, so that
	// they resume elsewhere when their node is gone (nil: they resume on
	// their node only).
	Images ImageKeeper
	// PlacementChoices is how many ready nodes a create samples, taking the
	// one with the most free memory: 2.
	PlacementChoices int
	// Builder builds templates on the node; nil means the template routes
	// that need it answer ErrUnavailable.
	Builder TemplateBuilder
	// TeamQuotas are the quotas of teams that have not set their own (see
	// store.QuotaSettings); zero fields, the default, are unlimited.
	TeamQuotas store.Quotas
	// RuntimeClasses are the runtime classes creates may ask for; it must hold
	// RuntimeGVisor, the default. nil means every class (RuntimeGVisor and
	// RuntimeRunc); `lelantos serve` passes its --runtime-classes.
	RuntimeClasses []string
	// Volumes keeps volumes' content; nil turns volumes off (their routes are
	// refused and volumeMounts find no volume).
	Volumes VolumeBackend
	// VolumeSizeMB is the size of a volume whose create gives none: 1024 MiB.
	// MaxVolumeSizeMB bounds the size a create may ask for: 65536 MiB.
	VolumeSizeMB    int
	MaxVolumeSizeMB int
	// VolumeTokenTTL is how long a volume's content token is valid: 24 h.
	VolumeTokenTTL time.Duration
	// Observer is told of lifecycle operations and quota refusals; nil:
	// nobody.
	Observer Observer
	// TracerProvider traces lifecycle operations; nil: no traces.
	TracerProvider trace.TracerProvider
}

// withDefaults returns c with its zero fields filled in.
func (c Config) withDefaults() Config {
	setDur := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	setInt := func(n *int, v int) {
		if *n == 0 {
			*n = v
		}
	}
	setInt(&c.DefaultCPU, 2)
	setInt(&c.DefaultMemoryMB, 512)
	setInt(&c.PlacementChoices, 2)
	setInt(&c.DefaultDiskSizeMB, 2048)
	setDur(&c.DefaultTimeout, 300*time.Second)
	setDur(&c.MaxTimeout, 24*time.Hour)
	setDur(&c.ReaperInterval, time.Second)
	setDur(&c.MetricsInterval, 5*time.Second)
	setDur(&c.MetricsRetention, 24*time.Hour)
	setDur(&c.DeadRetention, time.Hour)
	setDur(&c.PausedRetention, DefaultPausedRetention)
	setDur(&c.RepairInterval, time.Minute)
	setDur(&c.LeaseTTL, 15*time.Second)
	setDur(&c.NodeTimeout, 2*time.Minute)
	setDur(&c.HeartbeatInterval, DefaultHeartbeatInterval)
	setDur(&c.NodeLostAfter, 3*c.HeartbeatInterval)
	setInt(&c.VolumeSizeMB, 1024)
	setInt(&c.MaxVolumeSizeMB, 65536)
	setDur(&c.VolumeTokenTTL, 24*time.Hour)
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// validate rejects settings that cannot work.
func (c Config) validate() error {
	if c.DefaultCPU < 0 || c.DefaultMemoryMB < 0 || c.DefaultDiskSizeMB < 0 {
		return errors.New("default sandbox size must not be negative")
	}
	if q := c.TeamQuotas; q.MaxSandboxes < 0 || q.MaxVCPU < 0 || q.MaxMemoryMB < 0 || q.MaxBuilds < 0 {
		return errors.New("TeamQuotas must not be negative")
	}
	for name, d := range map[string]time.Duration{
		"DefaultTimeout": c.DefaultTimeout, "MaxTimeout": c.MaxTimeout,
		"ReaperInterval": c.ReaperInterval, "MetricsInterval": c.MetricsInterval,
		"MetricsRetention": c.MetricsRetention, "DeadRetention": c.DeadRetention,
		"NodeTimeout": c.NodeTimeout, "RepairInterval": c.RepairInterval, "LeaseTTL": c.LeaseTTL,
		"HeartbeatInterval": c.HeartbeatInterval, "NodeLostAfter": c.NodeLostAfter,
	} {
		if d < 0 {
			return fmt.Errorf("%s must not be negative", name)
		}
	}
	if c.PausedRetention < 0 && c.PausedRetention != PausedForever {
		return errors.New("PausedRetention must not be negative (PausedForever keeps paused sandboxes)")
	}
	if c.VolumeSizeMB < 0 || c.MaxVolumeSizeMB < 0 || c.VolumeSizeMB > c.MaxVolumeSizeMB {
		return fmt.Errorf("VolumeSizeMB %d must be between 0 and MaxVolumeSizeMB %d", c.VolumeSizeMB, c.MaxVolumeSizeMB)
	}
	if c.VolumeTokenTTL < 0 {
		return errors.New("VolumeTokenTTL must not be negative")
	}
	if c.DefaultTimeout > c.MaxTimeout {
		return fmt.Errorf("DefaultTimeout %s exceeds MaxTimeout %s", c.DefaultTimeout, c.MaxTimeout)
	}
	if c.RuntimeClasses != nil {
		for _, rc := range c.RuntimeClasses {
			if rc != RuntimeGVisor && rc != RuntimeRunc {
				return fmt.Errorf("RuntimeClasses: unknown runtime class %q (want %q or %q)", rc, RuntimeGVisor, RuntimeRunc)
			}
		}
		if !slices.Contains(c.RuntimeClasses, RuntimeGVisor) {
			return fmt.Errorf("RuntimeClasses %v must include %q, the default", c.RuntimeClasses, RuntimeGVisor)
		}
	}
	return nil
}
