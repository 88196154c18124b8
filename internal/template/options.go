package template

import (
	"context"
	"log/slog"
	"time"

	"lelantos.dev/lelantos/internal/engine"
	"lelantos.dev/lelantos/internal/network"
	"lelantos.dev/lelantos/internal/runtime"
	"lelantos.dev/lelantos/internal/saferoot"
	"lelantos.dev/lelantos/internal/store"
	"lelantos.dev/lelantos/internal/template/image"
)

// Store is what the builder needs of the control plane's store.
type Store interface {
	GetTemplate(ctx context.Context, idOrAlias string) (*store.Template, error)
	PutTemplate(ctx context.Context, t *store.Template) error
	ListTemplates(ctx context.Context) ([]*store.Template, error)
	DeleteTemplate(ctx context.Context, id string) error
}

// Engine is what the builder needs of the node's engine, to snapshot start commands.
type Engine interface {
	Create(ctx context.Context, s engine.Spec) (engine.Status, error)
	Snapshot(ctx context.Context, id, dir string) error
	Kill(ctx context.Context, id string) error
}

// Network is what the builder needs of the node's network manager, for RUN steps.
type Network interface {
	Setup(ctx context.Context, sandboxID string, opts network.Options) (*network.Endpoint, error)
	Teardown(ctx context.Context, sandboxID string) error
}

// BuilderOptions configures a Builder.
type BuilderOptions struct {
	// DataDir is the node's data directory; the builder keeps everything under
	// DataDir/templates. It should be on the same file system as the base tree so
	// that trees can share files as hard links (else they are copied).
	DataDir string
	Store   Store
	// Engine creates the sandboxes whose start command is snapshotted.
	Engine Engine
	// Runtime runs RUN steps; it must be able to write into its root
	// (runtime.Config.WritableRoot), as the gVisor runtime can. Use the engine's
	// runtime: the engine removes stray build sandboxes when the node restarts.
	Runtime runtime.Runtime
	// Network gives RUN steps a network namespace with internet access.
	Network Network
	// BaseRootfs returns the tree of the `base` template, for FROM base.
	BaseRootfs func() (string, error)
	Logger     *slog.Logger
	// RunCPUCount and RunMemoryMB size the sandbox of each RUN step; defaults 2 and
	// 2048.
	RunCPUCount, RunMemoryMB int
	// RunTimeout bounds one RUN step; default 30 minutes.
	RunTimeout time.Duration
	// RunDiskMB is what one RUN step may write: its changes go to a file system of
	// that size (a sparse file on the data directory's disk, loop-mounted), so the
	// command gets ENOSPC past it and the step fails. Default 10240 (10 GiB).
	RunDiskMB int
	// ExtractLimits bound what ADD unpacks of one archive and FROM of one image (all
	// its layers together): bytes, entries, compression ratio. Zero fields take
	// saferoot's defaults (10 GiB, 2^20 entries, 100 to 1).
	ExtractLimits saferoot.Limits
	// MaxBuilds is how many builds run at once on the node; default 2. Up to
	// MaxQueuedBuilds more wait for a turn (default 8; negative means none); beyond
	// that Build and Start fail with ErrBusy at once.
	MaxBuilds, MaxQueuedBuilds int
	// Nameservers are written into RUN steps' /etc/resolv.conf; nil means the host's.
	Nameservers []string
	// ExtraHosts are host names resolved on the host before each RUN step and given
	// to it in /etc/hosts, for hosts whose resolver sandboxes cannot reach (it is
	// often on a private address, which sandboxes may never reach). nil means the
	// host names of the step's APT sources (/etc/apt/sources.list*), so apt-get works.
	ExtraHosts []string
	// ImageDirs are host directories from which FROM may read OCI image layouts and
	// archives by absolute path. Relative paths are always read from the build
	// context; absolute paths elsewhere are refused, since build requests come from
	// API users who must not read the host's files.
	ImageDirs []string
	// ReadyTimeout bounds the wait for a start command's ready command; default 2
	// minutes.
	ReadyTimeout time.Duration
	// Registries says how FROM reaches registries: the operator's credentials
	// and the registries allowed on private addresses.
	Registries image.RemoteOptions
	// CacheMaxBytes caps the build cache (cached layers and uploaded files):
	// PruneCache removes the least recently used entries past it. 0 means
	// DefaultCacheMaxBytes; negative means no cap (only PruneLayers' age).
	CacheMaxBytes int64
	// MaxUploadBytes bounds one uploaded file of the step form (PutFile);
	// default 512 MiB.
	MaxUploadBytes int64
	// LeaseTime is how long GC keeps a version a create was handed (Lookup)
	// even though no sandbox runs on it yet; default DefaultLeaseTime.
	LeaseTime time.Duration
	// Observer is told how long builds take and how they end; nil: nobody.
	Observer Observer
}

// DefaultCacheMaxBytes is the build cache's cap when BuilderOptions sets none.
const DefaultCacheMaxBytes = 20 << 30

// DefaultReadyWait is how long a start command runs before the snapshot when the
// build gives no ready command.
const DefaultReadyWait = 3 * time.Second

// Result is a finished build.
type Result struct {
	BuildID  string
	Template *store.Template
	Metadata *Metadata
	// Steps counts the instructions; CacheHits the file-changing steps reused from
	// the cache; Ran the file-changing steps executed.
	Steps, CacheHits, Ran int
	Duration              time.Duration
}
