package controlplane

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"lelantos.dev/lelantos/internal/proxy"
	"lelantos.dev/lelantos/internal/store"
)

// The lifecycle operations the Service reports to its Observer and traces.
const (
	OpCreate           = "create"
	OpKill             = "kill"
	OpPause            = "pause"
	OpResume           = "resume"
	OpConnect          = "connect"
	OpFork             = "fork"
	OpSnapshot         = "snapshot"
	OpResumeForTraffic = "resume_for_traffic"
)

// Observer is told of what the control plane does: each lifecycle
// operation with how long it took and how it ended (err is nil on success;
// Result names its kind), and each admission a team's quota refused, by
// quota (store.QuotaSandboxes, QuotaVCPU, QuotaMemoryMB, QuotaBuilds). It is
// called from many goroutines at once, and must not block.
type Observer interface {
	Operation(op string, d time.Duration, err error)
	QuotaRefused(quota string)
}

// Result names how an operation ended, for metrics: "ok", or the kind of
// its error (invalid, unauthenticated, not_found, conflict, quota, denied,
// unavailable, internal).
func Result(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrInvalidArgument):
		return "invalid"
	case errors.Is(err, ErrUnauthenticated):
		return "unauthenticated"
	case errors.Is(err, ErrNotFound), errors.Is(err, proxy.ErrSandboxNotFound):
		return "not_found"
	case errors.Is(err, ErrConflict), errors.Is(err, proxy.ErrTransitioning):
		return "conflict"
	case errors.Is(err, ErrQuota), errors.Is(err, proxy.ErrTooManySandboxes):
		return "quota"
	case errors.Is(err, proxy.ErrResumeDenied):
		return "denied"
	case errors.Is(err, ErrUnavailable):
		return "unavailable"
	}
	return "internal"
}

// tracerName is the instrumentation scope of the control plane's spans.
const tracerName = "lelantos.dev/lelantos/internal/controlplane"

// begin starts operation op: a span (a child of the API request's), and the
// clock. end reports its result, with attributes for the span.
func (s *Service) begin(ctx context.Context, op string, attrs ...attribute.KeyValue) (context.Context, func(error, ...attribute.KeyValue)) {
	start := time.Now()
	tp := s.cfg.TracerProvider
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	ctx, span := tp.Tracer(tracerName).Start(ctx, "controlplane."+op, trace.WithAttributes(attrs...))
	return ctx, func(err error, more ...attribute.KeyValue) {
		span.SetAttributes(more...)
		if err != nil {
			span.SetAttributes(attribute.String("lelantos.result", Result(err)))
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
		if op == OpResumeForTraffic && errors.Is(err, proxy.ErrSandboxNotFound) {
			return
		}
		if s.cfg.Observer != nil {
			s.cfg.Observer.Operation(op, time.Since(start), err)
		}
	}
}

// sandboxAttr names a sandbox in a span.
func sandboxAttr(id string) attribute.KeyValue { return attribute.String("lelantos.sandbox.id", id) }

// Create makes a sandbox of team teamID and waits until it runs (see create),
// reported as OpCreate.
func (s *Service) Create(ctx context.Context, teamID string, req CreateRequest) (*store.Sandbox, error) {
	ctx, end := s.begin(ctx, OpCreate, attribute.String("lelantos.template", req.TemplateID))
	sb, err := s.create(ctx, teamID, req)
	if sb != nil {
		end(err, sandboxAttr(sb.ID))
	} else {
		end(err)
	}
	return sb, err
}

// Kill ends sandbox id of team teamID (see kill), reported as OpKill.
func (s *Service) Kill(ctx context.Context, teamID, id string) error {
	ctx, end := s.begin(ctx, OpKill, sandboxAttr(id))
	err := s.kill(ctx, teamID, id)
	end(err)
	return err
}

// PauseWith pauses sandbox id of team teamID (see pauseWith), reported as
// OpPause.
func (s *Service) PauseWith(ctx context.Context, teamID, id string, req PauseRequest) error {
	ctx, end := s.begin(ctx, OpPause, sandboxAttr(id), attribute.Bool("lelantos.files_only", req.FilesOnly))
	err := s.pauseWith(ctx, teamID, id, req)
	end(err)
	return err
}

// Resume brings paused sandbox id of team teamID back (see resume),
// reported as OpResume.
func (s *Service) Resume(ctx context.Context, teamID, id string, req ResumeRequest) (*store.Sandbox, error) {
	ctx, end := s.begin(ctx, OpResume, sandboxAttr(id))
	sb, err := s.resume(ctx, teamID, id, req)
	end(err)
	return sb, err
}

// ConnectWith makes sure sandbox id of team teamID runs (see connectWith),
// reported as OpConnect.
func (s *Service) ConnectWith(ctx context.Context, teamID, id string, req ConnectRequest) (*store.Sandbox, bool, error) {
	ctx, end := s.begin(ctx, OpConnect, sandboxAttr(id))
	sb, resumed, err := s.connectWith(ctx, teamID, id, req)
	end(err, attribute.Bool("lelantos.resumed", resumed))
	return sb, resumed, err
}

// Fork makes forks of running sandbox id of team teamID (see fork),
// reported as OpFork.
func (s *Service) Fork(ctx context.Context, teamID, id string, req ForkRequest) ([]ForkResult, error) {
	ctx, end := s.begin(ctx, OpFork, sandboxAttr(id), attribute.Int("lelantos.forks", req.Count))
	res, err := s.fork(ctx, teamID, id, req)
	end(err)
	return res, err
}

// CreateSnapshot snapshots running sandbox id of team teamID (see
// createSnapshot), reported as OpSnapshot.
func (s *Service) CreateSnapshot(ctx context.Context, teamID, id string, req SnapshotRequest) (*SnapshotInfo, error) {
	ctx, end := s.begin(ctx, OpSnapshot, sandboxAttr(id))
	info, err := s.createSnapshot(ctx, teamID, id, req)
	end(err)
	return info, err
}

// ResumeForTraffic resumes a paused sandbox for the proxy (see
// resumeForTraffic), reported as OpResumeForTraffic unless it is no
// sandbox traffic may resume (the proxy asks for every request to an
// unknown or ended one).
func (s *Service) ResumeForTraffic(ctx context.Context, req proxy.ResumeRequest) (proxy.Target, error) {
	ctx, end := s.begin(ctx, OpResumeForTraffic, sandboxAttr(req.SandboxID))
	t, err := s.resumeForTraffic(ctx, req)
	end(err)
	return t, err
}

// quotaStore reports the admissions its Store refuses for a team's quota.
type quotaStore struct {
	Store
	obs Observer
}

// observeQuotas returns st, reporting its quota refusals to obs.
func observeQuotas(st Store, obs Observer) Store {
	if obs == nil {
		return st
	}
	return quotaStore{Store: st, obs: obs}
}

func (q quotaStore) refused(err error) error {
	var qe *store.QuotaError
	if errors.As(err, &qe) {
		q.obs.QuotaRefused(qe.Quota)
	}
	return err
}

// InsertSandboxWithin implements Store.
func (q quotaStore) InsertSandboxWithin(ctx context.Context, sb *store.Sandbox, defaults store.Quotas) error {
	return q.refused(q.Store.InsertSandboxWithin(ctx, sb, defaults))
}

// UpdateSandboxWithin implements Store.
func (q quotaStore) UpdateSandboxWithin(ctx context.Context, sb *store.Sandbox, defaults store.Quotas) error {
	return q.refused(q.Store.UpdateSandboxWithin(ctx, sb, defaults))
}

// InsertTemplateBuild implements Store.
func (q quotaStore) InsertTemplateBuild(ctx context.Context, b *store.TemplateBuild, defaults store.Quotas) error {
	return q.refused(q.Store.InsertTemplateBuild(ctx, b, defaults))
}
