package controlplane

import (
	"context"
	"errors"
	"io"
	"maps"
	"time"

	"lelantos.dev/lelantos/internal/store"
)

// TemplateDetails is what a sandbox of a template needs besides the store's
// record of the template: it comes from the node that built the template.
type TemplateDetails struct {
	// Rootfs is the tree of the template's current build; "" means the
	// store's RootfsPath. It is read together with the fields below, so that
	// a rebuild in between cannot pair one build's tree with another's
	// snapshot.
	Rootfs string
	// DefaultUser and DefaultWorkdir are the Dockerfile's last USER and
	// WORKDIR; "" leaves the daemon's defaults.
	DefaultUser, DefaultWorkdir string
	// Env is the template's environment (the Dockerfile's ENV); a sandbox's
	// own variables override it.
	Env map[string]string
	// StartCmd runs in every new sandbox of the template.
	StartCmd string
	// SnapshotImage is the node's snapshot of a sandbox of the template with
	// StartCmd running; new sandboxes are restored from it.
	SnapshotImage string
}

// TemplateSource gives the details of a template. An error wrapping
// ErrNotFound means the template has none (a template registered directly in
// the store, like base): its sandboxes get the store's record only.
type TemplateSource interface {
	// TemplateDetails describes build buildID of the template: the one the
	// store's record (or a tag) named. When that build was superseded and
	// is gone (no tag keeps it), the template's current build is described.
	TemplateDetails(ctx context.Context, templateID, buildID string) (TemplateDetails, error)
}

// Template build states, as E2B's API names them.
const (
	// BuildWaiting is a build requested (RequestTemplateBuild) and not
	// started yet.
	BuildWaiting  = "waiting"
	BuildBuilding = "building"
	BuildReady    = "ready"
	BuildError    = "error"
)

// TemplateBuildRequest is a build of a template from a Dockerfile.
type TemplateBuildRequest struct {
	// Name is the template's name in the caller's team: 1-63 of a-z, 0-9,
	// '-' and '_', starting with a letter or digit. Building an existing
	// name makes a new version. The Service hands the builder the
	// template's ID here instead, which is unique across teams.
	Name string
	// BuildID is the build's ID (a UUID), issued by the Service.
	BuildID string
	// FromTemplate looks up the template a Dockerfile's FROM names, among
	// those the caller's team may use (its own and public ones); errors
	// wrap store.ErrNotFound for any other. Set by the Service.
	FromTemplate func(ctx context.Context, ref string) (*store.Template, error)
	// Dockerfile is the Dockerfile's text.
	Dockerfile string
	// Context, when not nil, is the build context as a tar stream, plain or
	// gzip-compressed; the builder reads it before StartBuild returns.
	Context io.Reader
	// StartCmd and ReadyCmd: see the template package; ReadyCmd needs
	// StartCmd.
	StartCmd, ReadyCmd string
	// CPUCount, MemoryMB and DiskSizeMB size the template's sandboxes; 0
	// means the builder's default.
	CPUCount, MemoryMB, DiskSizeMB int
	// BuildArgs override the Dockerfile's ARG defaults.
	BuildArgs map[string]string
	// Spec, instead of Dockerfile, is the template in E2B's step form (the
	// e2b SDK's Template builder). Its COPY steps read the files team
	// TeamID uploaded (PutFile).
	Spec   *TemplateSpec
	TeamID string
	// Tags are the tags the build gets; nil means "default" only.
	Tags []string
}

// TemplateSpec is a template in E2B's step form.
type TemplateSpec struct {
	// FromImage is an image reference, FromTemplate a template name: exactly
	// one is set.
	FromImage, FromTemplate string
	// Registry are credentials for FromImage's registry.
	Registry *RegistryCredentials
	// Force ignores the build cache.
	Force bool
	Steps []TemplateStep
}

// RegistryCredentials authenticate an image pull.
type RegistryCredentials struct {
	Username, Password string
}

// TemplateStep is one step of the step form: RUN, COPY, ENV, ARG, WORKDIR or
// USER with their arguments; FilesHash names a COPY step's uploaded files;
// Force rebuilds the step and those after it.
type TemplateStep struct {
	Type      string
	Args      []string
	FilesHash string
	Force     bool
}

// TemplateTag points a template's name:tag at one of its builds.
type TemplateTag struct {
	Tag       string
	BuildID   string
	CreatedAt time.Time
}

// TemplateBuild is one build of a template.
type TemplateBuild struct {
	BuildID    string
	TemplateID string
	// Status is BuildWaiting, BuildBuilding, BuildReady or BuildError.
	Status string
	// Reason says why a build failed, and ReasonStep at which step: "base",
	// a step (its 1-based number in the step form, its line in a
	// Dockerfile), or "finalize".
	Reason, ReasonStep string
	StartedAt          time.Time
	FinishedAt         *time.Time
}

// TemplateLogEntry is one line of a build's log.
type TemplateLogEntry struct {
	Timestamp time.Time
	// Level is "info" or "error" (E2B's levels: debug, info, warn, error).
	Level   string
	Message string
	// Step is the step the line belongs to, named as ReasonStep names it.
	Step string
}

// TemplateBuilder builds templates on a node and keeps their builds and
// logs. Errors a caller branches on carry a kind: ErrInvalidArgument (a bad
// request or Dockerfile, with a message naming the field), ErrNotFound,
// ErrConflict (a template in use or being built).
type TemplateBuilder interface {
	// StartBuild checks the request, reads the context and starts the build
	// (of template req.Name, with ID req.BuildID) in the background,
	// returning its ID.
	StartBuild(ctx context.Context, req TemplateBuildRequest) (buildID string, err error)
	// Build reports one build.
	Build(ctx context.Context, buildID string) (*TemplateBuild, error)
	// BuildLogs returns up to limit (all when <= 0) entries of a build's log
	// from the offset-th on; it may be called while the build runs.
	BuildLogs(ctx context.Context, buildID string, offset, limit int) ([]TemplateLogEntry, error)
	// Builds lists a template's builds, newest first.
	Builds(ctx context.Context, templateID string) ([]*TemplateBuild, error)
	// Delete removes a template and its files unless inUse reports
	// sandboxes of it.
	Delete(ctx context.Context, templateID string, inUse func(templateID string) (bool, error)) error
	// ReserveBuild records a build (req.Name, req.BuildID, its sizes and
	// tags) that StartBuild starts later, with the same build ID; it fails
	// if not started within an hour.
	ReserveBuild(ctx context.Context, req TemplateBuildRequest) error
	// HasFile and PutFile keep the uploaded files of team teamID's step
	// form builds, by the client's hash of them.
	HasFile(ctx context.Context, teamID, hash string) (bool, error)
	PutFile(ctx context.Context, teamID, hash string, r io.Reader) error
	// Tags lists a template's tags, "default" (its current build) first.
	Tags(ctx context.Context, templateID string) ([]TemplateTag, error)
	// AssignTags points tags of a template at its build buildID; "default"
	// makes it the current build.
	AssignTags(ctx context.Context, templateID, buildID string, tags []string) error
	// RemoveTags removes tags; "default" cannot be removed.
	RemoveTags(ctx context.Context, templateID string, tags []string) error
}

// templateDetails returns the details of tpl; none when the Service has no
// TemplateSource or the source does not know the template.
func (s *Service) templateDetails(ctx context.Context, tpl *store.Template) (TemplateDetails, error) {
	if s.cfg.Templates == nil || tpl == nil {
		return TemplateDetails{}, nil
	}
	d, err := s.cfg.Templates.TemplateDetails(ctx, tpl.ID, tpl.BuildID)
	if errors.Is(err, ErrNotFound) {
		return TemplateDetails{}, nil
	}
	if err != nil {
		return TemplateDetails{}, internal("read details of template "+tpl.ID, err)
	}
	return d, nil
}

// mergeEnv returns the template's environment overridden by the sandbox's;
// nil when both are empty.
func mergeEnv(template, sandbox map[string]string) map[string]string {
	if len(template) == 0 {
		return sandbox
	}
	out := maps.Clone(template)
	maps.Copy(out, sandbox)
	return out
}

// liveStates are the states of sandboxes that still need their template's
// files.
var liveStates = []string{StateStarting, StateRunning, StatePausing, StatePaused, StateResuming}

// TemplateInUse reports whether any sandbox that is not dead or killed was
// made from template id (an ID, not an alias).
func (s *Service) TemplateInUse(ctx context.Context, id string) (bool, error) {
	sbs, _, err := s.store.ListSandboxes(ctx, store.SandboxFilter{TemplateID: id, States: liveStates, Limit: 1})
	if err != nil {
		return false, internal("list sandboxes of template "+id, err)
	}
	return len(sbs) > 0, nil
}
