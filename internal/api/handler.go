// Package api is the control plane's HTTP API, shaped like E2B's so that
// the official E2B clients work with it unmodified: routes in, calls to the
// control plane's Service out. It authenticates requests by API key, decodes
// and validates bodies and query parameters (a bad one is a 400 naming the
// field), and answers every error as {"code": <status>, "message": "..."}.
// The contract is api/openapi.yaml, served at GET /openapi.yaml.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"lelantos.dev/lelantos/internal/controlplane"
	"lelantos.dev/lelantos/internal/store"
)

// Service is what the handlers need from the control plane;
// *controlplane.Service implements it.
type Service interface {
	Create(ctx context.Context, req controlplane.CreateRequest) (*store.Sandbox, error)
	Get(ctx context.Context, id string) (*store.Sandbox, error)
	List(ctx context.Context, req controlplane.ListRequest) ([]*store.Sandbox, string, error)
	ListRunning(ctx context.Context, metadata map[string]string) ([]*store.Sandbox, error)
	Kill(ctx context.Context, id string) error
	SetTimeout(ctx context.Context, id string, timeout time.Duration) error
	Refresh(ctx context.Context, id string, d time.Duration) error
	Pause(ctx context.Context, id string) error
	Resume(ctx context.Context, id string, req controlplane.ResumeRequest) (*store.Sandbox, error)
	Connect(ctx context.Context, id string, timeout time.Duration) (*store.Sandbox, bool, error)
	Logs(ctx context.Context, id string, start time.Time, limit int) ([]controlplane.LogLine, error)
	Metrics(ctx context.Context, id string, start, end time.Time) ([]store.Metric, error)
	Domain() string
	MaxTimeout() time.Duration
}

// Authenticator checks the API key of a request; *controlplane.Authenticator
// implements it. An error wrapping controlplane.ErrUnauthenticated is a 401.
type Authenticator interface {
	Authenticate(ctx context.Context, key string) error
}

// Options tune the handler. The zero value is usable.
type Options struct {
	// Logger receives handler errors and recovered panics; slog.Default()
	// when nil.
	Logger *slog.Logger
	// MaxBodyBytes bounds request bodies: 1 MiB when 0.
	MaxBodyBytes int64
	// Spec is served at GET /openapi.yaml; nothing is served there when nil.
	Spec []byte
	// Templates serves the /templates routes; they do not exist when nil.
	Templates Templates
	// MaxBuildBodyBytes bounds the body of POST /templates, which carries
	// the build context: 512 MiB when 0.
	MaxBuildBodyBytes int64
}

// defaultMaxBody is the request body limit when Options.MaxBodyBytes is 0.
const defaultMaxBody = 1 << 20

// handler holds the dependencies of the routes.
type handler struct {
	svc          Service
	templates    Templates
	auth         Authenticator
	log          *slog.Logger
	maxBody      int64
	maxBuildBody int64
	spec         []byte
}

// NewHandler returns the API's http.Handler.
func NewHandler(svc Service, auth Authenticator, opts Options) http.Handler {
	h := &handler{svc: svc, templates: opts.Templates, auth: auth, log: opts.Logger, maxBody: opts.MaxBodyBytes,
		maxBuildBody: opts.MaxBuildBodyBytes, spec: opts.Spec}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.maxBody <= 0 {
		h.maxBody = defaultMaxBody
	}
	if h.maxBuildBody <= 0 {
		h.maxBuildBody = defaultMaxBuildBody
	}

	r := chi.NewRouter()
	r.Use(h.recoverer)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no route "+r.Method+" "+r.URL.Path)
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed on "+r.URL.Path)
	})
	r.Get("/health", h.health)
	r.Get("/openapi.yaml", h.openapi)
	r.Group(func(r chi.Router) {
		r.Use(h.authenticate)
		r.Post("/sandboxes", h.create)
		r.Post("/v2/sandboxes", h.create)
		r.Get("/sandboxes", h.listV1)
		r.Get("/v2/sandboxes", h.listV2)
		r.Get("/sandboxes/{sandboxID}", h.get)
		r.Delete("/sandboxes/{sandboxID}", h.kill)
		r.Post("/sandboxes/{sandboxID}/timeout", h.timeout)
		r.Post("/sandboxes/{sandboxID}/refreshes", h.refresh)
		r.Post("/sandboxes/{sandboxID}/pause", h.pause)
		r.Post("/sandboxes/{sandboxID}/resume", h.resume)
		r.Post("/sandboxes/{sandboxID}/connect", h.connect)
		r.Post("/v2/sandboxes/{sandboxID}/connect", h.connect)
		r.Get("/sandboxes/{sandboxID}/logs", h.logs)
		r.Get("/sandboxes/{sandboxID}/metrics", h.metrics)
		if h.templates != nil {
			r.Get("/templates", h.listTemplates)
			r.Post("/templates", h.buildTemplate)
			r.Get("/templates/{templateID}", h.getTemplate)
			r.Delete("/templates/{templateID}", h.deleteTemplate)
			r.Get("/templates/{templateID}/builds/{buildID}/status", h.buildStatus)
			r.Get("/templates/{templateID}/builds/{buildID}/logs", h.buildLogs)
		}
	})
	return r
}

// health answers liveness probes without authentication.
func (h *handler) health(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// openapi serves the contract.
func (h *handler) openapi(w http.ResponseWriter, _ *http.Request) {
	if h.spec == nil {
		writeError(w, http.StatusNotFound, "no OpenAPI document configured")
		return
	}
	w.Header().Set("Content-Type", "application/yaml")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(h.spec)
}

// sandboxID is the {sandboxID} path parameter.
func sandboxID(r *http.Request) string { return chi.URLParam(r, "sandboxID") }
