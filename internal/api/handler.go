// Package api is the control plane's HTTP API, shaped like E2B's so that
// the official E2B clients work with it unmodified: routes in, calls to the
// control plane's Service out. It authenticates requests by API key (the key
// tells the caller's team, and every call is scoped to that team), decodes
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
// *controlplane.Service implements it. Every method that touches a sandbox
// takes the caller's team (the principal's TeamID) and acts on that team's
// sandboxes only.
type Service interface {
	Create(ctx context.Context, teamID string, req controlplane.CreateRequest) (*store.Sandbox, error)
	Get(ctx context.Context, teamID, id string) (*store.Sandbox, error)
	List(ctx context.Context, teamID string, req controlplane.ListRequest) ([]*store.Sandbox, string, error)
	ListRunning(ctx context.Context, teamID string, metadata map[string]string) ([]*store.Sandbox, error)
	Kill(ctx context.Context, teamID, id string) error
	SetTimeout(ctx context.Context, teamID, id string, timeout time.Duration) error
	Refresh(ctx context.Context, teamID, id string, d time.Duration) error
	Pause(ctx context.Context, teamID, id string) error
	Resume(ctx context.Context, teamID, id string, req controlplane.ResumeRequest) (*store.Sandbox, error)
	Connect(ctx context.Context, teamID, id string, timeout time.Duration) (*store.Sandbox, bool, error)
	Logs(ctx context.Context, teamID, id string, start time.Time, limit int) ([]controlplane.LogLine, error)
	Metrics(ctx context.Context, teamID, id string, start, end time.Time) ([]store.Metric, error)
	Domain() string
	MaxTimeout() time.Duration
}

// Authenticator checks the API key of a request and says who is calling;
// *controlplane.Authenticator implements it. An error wrapping
// controlplane.ErrUnauthenticated is a 401.
type Authenticator interface {
	Authenticate(ctx context.Context, key string) (controlplane.Principal, error)
}

// Options tune the handler. The zero value is usable.
type Options struct {
	// Logger receives handler errors and recovered panics; slog.Default()
	// when nil.
	Logger *slog.Logger
	// MaxBodyBytes bounds the request bodies of every route but POST
	// /templates: 1 MiB when 0.
	MaxBodyBytes int64
	// Spec is served at GET /openapi.yaml; nothing is served there when nil.
	Spec []byte
	// Templates serves the /templates routes; they do not exist when nil.
	Templates Templates
	// Accounts serves the /teams and /api-keys routes; they do not exist
	// when nil.
	Accounts Accounts
	// MaxBuildBodyBytes bounds the build context streamed as the body of
	// POST /templates (Content-Type application/x-tar or application/gzip):
	// 512 MiB when 0. Its JSON form, with the context in base64, is bounded
	// by 16 MiB (or this, when lower).
	MaxBuildBodyBytes int64
}

// defaultMaxBody is the request body limit when Options.MaxBodyBytes is 0.
const defaultMaxBody = 1 << 20

// handler holds the dependencies of the routes.
type handler struct {
	svc          Service
	templates    Templates
	accounts     Accounts
	auth         Authenticator
	log          *slog.Logger
	maxBody      int64
	maxBuildBody int64
	spec         []byte
}

// NewHandler returns the API's http.Handler.
func NewHandler(svc Service, auth Authenticator, opts Options) http.Handler {
	h := &handler{svc: svc, templates: opts.Templates, accounts: opts.Accounts, auth: auth, log: opts.Logger, maxBody: opts.MaxBodyBytes,
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
		if h.accounts != nil {
			r.Get("/teams", h.listTeams)
			r.Get("/api-keys", h.listKeys)
			r.Post("/api-keys", h.createKey)
			r.Patch("/api-keys/{apiKeyID}", h.renameKey)
			r.Delete("/api-keys/{apiKeyID}", h.deleteKey)
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
