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
	"crypto/rand"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"go.opentelemetry.io/otel/trace"

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
	UpdateNetwork(ctx context.Context, teamID, id string, u controlplane.NetworkUpdate) error
	SetTimeout(ctx context.Context, teamID, id string, timeout time.Duration) error
	Refresh(ctx context.Context, teamID, id string, d time.Duration) error
	Pause(ctx context.Context, teamID, id string) error
	Resume(ctx context.Context, teamID, id string, req controlplane.ResumeRequest) (*store.Sandbox, error)
	Connect(ctx context.Context, teamID, id string, timeout time.Duration) (*store.Sandbox, bool, error)
	Forks
	Logs(ctx context.Context, teamID, id string, q controlplane.LogQuery) ([]controlplane.LogEntry, error)
	Metrics(ctx context.Context, teamID, id string, start, end time.Time) ([]store.Metric, error)
	LatestMetrics(ctx context.Context, teamID string, ids []string) (map[string]store.Metric, error)
	Nodes(ctx context.Context) ([]controlplane.NodeView, error)
	SetNodeStatus(ctx context.Context, id, status string) error
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
	// Volumes serves the /volumes routes and the volume content API
	// (/volumecontent, authenticated by the volume's token); both answer 403
	// when nil.
	Volumes Volumes
	// UploadKey signs the upload links of template files (GET
	// /templates/{templateID}/files/{hash}); nil means a random key, so that
	// links die with the process.
	UploadKey []byte
	// MaxBuildBodyBytes bounds the build context streamed as the body of
	// POST /templates (Content-Type application/x-tar or application/gzip):
	// 512 MiB when 0. Its JSON form, with the context in base64, is bounded
	// by 16 MiB (or this, when lower).
	MaxBuildBodyBytes int64
	// Observer is told of every request (route, status, duration); nil:
	// nobody.
	Observer Observer
	// TracerProvider traces every request as a server span; nil: no traces.
	TracerProvider trace.TracerProvider
}

// defaultMaxBody is the request body limit when Options.MaxBodyBytes is 0.
const defaultMaxBody = 1 << 20

// handler holds the dependencies of the routes.
type handler struct {
	svc          Service
	templates    Templates
	accounts     Accounts
	volumes      Volumes
	auth         Authenticator
	log          *slog.Logger
	maxBody      int64
	maxBuildBody int64
	spec         []byte
	uploadKey    []byte
}

// NewHandler returns the API's http.Handler.
func NewHandler(svc Service, auth Authenticator, opts Options) http.Handler {
	h := &handler{svc: svc, templates: opts.Templates, accounts: opts.Accounts, volumes: opts.Volumes, auth: auth, log: opts.Logger, maxBody: opts.MaxBodyBytes,
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
	if h.uploadKey = opts.UploadKey; len(h.uploadKey) == 0 {
		h.uploadKey = make([]byte, 32)
		_, _ = rand.Read(h.uploadKey)
	}

	r := chi.NewRouter()
	r.Use(observe(opts.Observer, opts.TracerProvider))
	r.Use(h.recoverer)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no route "+r.Method+" "+r.URL.Path)
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed on "+r.URL.Path)
	})
	r.Get("/health", h.health)
	r.Get("/openapi.yaml", h.openapi)
	if h.templates != nil {
		// The e2b SDK uploads template files without its API key: the
		// link's signature authorizes the upload.
		r.Put("/templates/{templateID}/files/{hash}", h.uploadFile)
	}
	// The volume content API authenticates by the volume's token, not a key.
	r.Get("/volumecontent/{volumeID}/dir", h.content(h.listDir))
	r.Post("/volumecontent/{volumeID}/dir", h.content(h.makeDir))
	r.Get("/volumecontent/{volumeID}/path", h.content(h.statPath))
	r.Patch("/volumecontent/{volumeID}/path", h.content(h.updatePath))
	r.Delete("/volumecontent/{volumeID}/path", h.content(h.removePath))
	r.Get("/volumecontent/{volumeID}/file", h.content(h.readFile))
	r.Put("/volumecontent/{volumeID}/file", h.content(h.writeFile))
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
		r.Put("/sandboxes/{sandboxID}/network", h.updateNetwork)
		r.Post("/sandboxes/{sandboxID}/resume", h.resume)
		r.Post("/sandboxes/{sandboxID}/connect", h.connect)
		r.Post("/sandboxes/{sandboxID}/fork", h.fork)
		r.Post("/sandboxes/{sandboxID}/snapshots", h.createSnapshot)
		r.Get("/snapshots", h.listSnapshots)
		r.Post("/v2/sandboxes/{sandboxID}/connect", h.connect)
		r.Get("/sandboxes/{sandboxID}/logs", h.logs)
		r.Get("/v2/sandboxes/{sandboxID}/logs", h.logsV2)
		r.Get("/sandboxes/{sandboxID}/metrics", h.metrics)
		r.Get("/sandboxes/metrics", h.batchMetrics)
		r.Get("/nodes", h.listNodes)
		r.Post("/nodes/{nodeID}", h.setNodeStatus)
		if h.templates != nil {
			r.Get("/templates", h.listTemplates)
			r.Post("/templates", h.buildTemplate)
			r.Get("/templates/{templateID}", h.getTemplate)
			r.Delete("/templates/{templateID}", h.deleteTemplate)
			r.Get("/templates/{templateID}/builds/{buildID}/status", h.buildStatus)
			r.Get("/templates/{templateID}/builds/{buildID}/logs", h.buildLogs)
			r.Post("/v3/templates", h.requestBuild)
			r.Get("/templates/{templateID}/files/{hash}", h.fileUploadLink)
			r.Post("/v2/templates/{templateID}/builds/{buildID}", h.startBuild)
			r.Get("/templates/aliases/{alias}", h.templateAlias)
			r.Post("/templates/tags", h.assignTags)
			r.Delete("/templates/tags", h.removeTags)
			r.Get("/templates/{templateID}/tags", h.templateTags)
		}
		r.Post("/volumes", h.createVolume)
		r.Get("/volumes", h.listVolumes)
		r.Get("/volumes/{volumeID}", h.getVolume)
		r.Delete("/volumes/{volumeID}", h.deleteVolume)
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
