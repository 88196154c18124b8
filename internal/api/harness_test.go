package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	apispec "lelantos.dev/lelantos/api"
	"lelantos.dev/lelantos/internal/controlplane"
	"lelantos.dev/lelantos/internal/controlplane/controlplanetest"
	"lelantos.dev/lelantos/internal/store"
	"lelantos.dev/lelantos/internal/volume"
)

// Service, Templates and Authenticator must be satisfied by the control
// plane.
var (
	_ Service       = (*controlplane.Service)(nil)
	_ Templates     = (*controlplane.Service)(nil)
	_ Authenticator = (*controlplane.Authenticator)(nil)
	_ Volumes       = (*controlplane.Service)(nil)
)

// env is the API on a real SQLite store with a fake node, plus the OpenAPI
// document every response is checked against.
type env struct {
	t       testing.TB
	h       http.Handler
	svc     *controlplane.Service
	db      *store.DB
	node    *controlplanetest.Node
	builder *fakeBuilder
	// key is an API key of the default team, keyB one of team "beta".
	key, keyB string
	teamB     *store.Team
	doc       *openapi3.T
	router    routers.Router
	mu        sync.Mutex
	covered   map[string]bool // "METHOD /path/template" and "... STATUS"
	// allow5xx is set by tests that provoke internal errors on purpose.
	allow5xx atomic.Bool
	// lenientRequests stops checking that requests which got a 2xx match the
	// spec (fuzzing sends requests the server tolerates but the spec does not
	// describe); responses are still checked.
	lenientRequests bool
}

// quiet is a logger that drops everything.
func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newEnv(t testing.TB) *env {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "api.db"))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	for _, tpl := range []*store.Template{
		{ID: "base", Status: store.TemplateReady, RootfsPath: "/t/base", Public: true},
		{ID: "py", Status: store.TemplateReady, Aliases: []string{"python"}, CPUCount: 1, MemoryMB: 256, EnvdVersion: "0.6.5"},
	} {
		if err := db.PutTemplate(ctx, tpl); err != nil {
			t.Fatal(err)
		}
	}
	node := controlplanetest.NewNode()
	builder := newFakeBuilder(db)
	vols, err := volume.NewDirs(filepath.Join(t.TempDir(), "volumes"))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := controlplane.New(controlplane.Config{Domain: "lelantos.test", Logger: quiet(),
		Templates: builder, Builder: builder, Volumes: vols}, db, node)
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := controlplane.CreateAPIKey(ctx, db, "test")
	if err != nil {
		t.Fatal(err)
	}
	teamB, err := controlplane.CreateTeam(ctx, db, "beta", "Team Beta", store.QuotaSettings{})
	if err != nil {
		t.Fatal(err)
	}
	keyB, _, err := controlplane.CreateTeamAPIKey(ctx, db, teamB.ID, "b")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(apispec.Spec())
	if err != nil {
		t.Fatalf("load openapi.yaml: %v", err)
	}
	if err := doc.Validate(ctx); err != nil {
		t.Fatalf("openapi.yaml is invalid: %v", err)
	}
	doc.Servers = nil // match any host
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandler(svc, controlplane.NewAuthenticator(db, nil), Options{Logger: quiet(), Spec: apispec.Spec(), Templates: svc,
		Accounts: controlplane.NewAccounts(db), Volumes: svc})
	return &env{t: t, h: h, svc: svc, db: db, node: node, builder: builder, key: key, keyB: keyB, teamB: teamB, doc: doc,
		router: router, covered: map[string]bool{}}
}

// response is a recorded answer.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// decode unmarshals the body into v or fails the test.
func (r *response) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// errorMessage returns the message of an error body, checking its shape.
func (r *response) errorMessage(t testing.TB) string {
	t.Helper()
	var e struct {
		Code    *int    `json:"code"`
		Message *string `json:"message"`
	}
	r.decode(t, &e)
	if e.Code == nil || e.Message == nil || *e.Code != r.Status {
		t.Fatalf("error body %s: want code %d and a message", r.Body, r.Status)
	}
	return *e.Message
}

// do sends a request with the API key and checks it against the spec.
func (e *env) do(method, path, body string) *response {
	e.t.Helper()
	return e.doWith(method, path, body, http.Header{"X-Api-Key": {e.key}})
}

// doAs is do with another API key.
func (e *env) doAs(key, method, path, body string) *response {
	e.t.Helper()
	return e.doWith(method, path, body, http.Header{"X-Api-Key": {key}})
}

// doWith sends a request with the given headers. The response (and, for a
// 2xx, the request) must conform to openapi.yaml.
func (e *env) doWith(method, path, body string, hdr http.Header) *response {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	for k, vs := range hdr {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	res := &response{Status: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
	e.check(req, body, res)
	return res
}

// doStream sends body with the API key as it is read, of the given content
// type and length (-1: unknown, sent chunked), and checks the answer against
// the spec (the request's body is not validated: it is an archive).
func (e *env) doStream(method, path, contentType string, body io.Reader, length int64) *response {
	e.t.Helper()
	req := httptest.NewRequest(method, path, body)
	req.ContentLength = length
	req.Header.Set("X-API-Key", e.key)
	req.Header.Set("Content-Type", contentType)
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	res := &response{Status: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
	e.check(req, "", res)
	return res
}

// raw sends a request with the API key, without checking it against the
// spec (for benchmarks).
func (e *env) raw(method, path, body string) *httptest.ResponseRecorder {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	req.Header.Set("X-API-Key", e.key)
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return rec
}

// check validates a request/response pair against the spec and records the
// route and status as covered.
func (e *env) check(req *http.Request, body string, res *response) {
	e.t.Helper()
	if res.Status >= 500 && res.Status != http.StatusServiceUnavailable && !e.allow5xx.Load() {
		e.t.Errorf("%s %s: status %d: %s", req.Method, req.URL, res.Status, res.Body)
	}
	if res.Status == http.StatusNoContent && len(res.Body) != 0 {
		e.t.Errorf("%s %s: 204 with a body", req.Method, req.URL)
	}
	bodiless := res.Status == http.StatusNoContent || (res.Status < 300 && len(res.Body) == 0)
	if bodiless && res.Status != http.StatusNoContent && res.Header.Get("Content-Length") != "0" {
		e.t.Errorf("%s %s: a bodiless %d without Content-Length: 0", req.Method, req.URL, res.Status)
	}
	if !bodiless && res.Header.Get("Content-Type") == "" {
		e.t.Errorf("%s %s: no Content-Type", req.Method, req.URL)
	}
	if res.Status == http.StatusTooManyRequests && res.Header.Get("Retry-After") != "" {
		e.t.Errorf("%s %s: a 429 with Retry-After (the clients would retry it)", req.Method, req.URL)
	}
	// Routes match the escaped path, as the handler's router does: an ID with
	// an escaped "/" stays one segment.
	routed := req
	if req.URL.RawPath != "" {
		routed = req.Clone(context.Background())
		routed.URL.Path = req.URL.RawPath
	}
	route, params, err := e.router.FindRoute(routed)
	if err != nil {
		if res.Status != http.StatusNotFound && res.Status != http.StatusMethodNotAllowed {
			e.t.Errorf("%s %s answered %d but is not in openapi.yaml: %v", req.Method, req.URL.Path, res.Status, err)
		}
		return
	}
	ctx := context.Background()
	in := &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, ExcludeRequestBody: isArchive(req)},
	}
	if res.Status < 300 && !e.lenientRequests {
		vreq := req.Clone(ctx)
		vreq.Body = io.NopCloser(strings.NewReader(body))
		in.Request = vreq
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			e.t.Errorf("%s %s: request does not match openapi.yaml: %v", req.Method, req.URL, err)
		}
		in.Request = req
	}
	err = openapi3filter.ValidateResponse(ctx, &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: res.Status, Header: res.Header,
		Body: io.NopCloser(bytes.NewReader(res.Body)),
	})
	if err != nil {
		e.t.Errorf("%s %s -> %d: response does not match openapi.yaml: %v\nbody: %s", req.Method, req.URL, res.Status, err, res.Body)
	}
	e.mu.Lock()
	e.covered[route.Method+" "+route.Path+" "+http.StatusText(res.Status)] = true
	e.covered[route.Method+" "+route.Path] = true
	e.mu.Unlock()
}
