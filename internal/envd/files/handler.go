// Package files serves the daemon's plain HTTP file transfer routes: GET /files
// streams a file out (optionally gzip-encoded) and POST /files streams one or
// more files in (multipart or a raw, optionally gzip-encoded body), owned by the
// calling user, with X-Metadata-* headers kept as extended attributes. Files are
// opened (and parents made) with the calling user's credentials, so the kernel
// decides what the user may read or write; only regular files are read or
// written. Nothing is buffered whole, whatever the size. Requests carry the
// access token or a signed URL when the sandbox has a token.
package files

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"lelantos.dev/lelantos/internal/envd/errmap"
	"lelantos.dev/lelantos/internal/envd/identity"
)

// Settings is what the handler needs from the sandbox's settings.
type Settings interface {
	Tokens
	// DefaultUser returns the user calls run as by default ("" for the fallback).
	DefaultUser() string
	// DefaultWorkdir returns the default working directory ("" for the home).
	DefaultWorkdir() string
}

// Handler serves GET and POST /files.
type Handler struct {
	settings Settings
	users    *identity.Users
	log      *slog.Logger
	now      func() time.Time
}

// NewHandler returns a Handler for the sandbox's settings.
func NewHandler(settings Settings, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.Default()
	}
	return &Handler{settings: settings, users: identity.NewUsers(), log: log, now: time.Now}
}

// ServeHTTP dispatches on the method.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		h.download(w, r)
	case http.MethodPost:
		h.upload(w, r)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		WriteError(w, http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed", r.Method))
	}
}

// caller authorizes r for op and resolves its user from the username query.
func (h *Handler) caller(w http.ResponseWriter, r *http.Request, op string) (identity.User, bool) {
	if err := authorize(r, h.settings, op, h.now()); err != nil {
		status := http.StatusUnauthorized
		if err == ErrBadExpiration {
			status = http.StatusBadRequest
		}
		WriteError(w, status, err)
		return identity.User{}, false
	}
	u, err := h.users.Resolve(r.URL.Query().Get("username"), h.settings.DefaultUser())
	if err != nil {
		WriteError(w, http.StatusUnauthorized, fmt.Errorf("resolve user: %w", err))
		return identity.User{}, false
	}
	return u, true
}

// fail writes err with the status its kind maps to.
func fail(w http.ResponseWriter, err error) {
	if errors.Is(err, errNotRegular) {
		WriteError(w, http.StatusBadRequest, err)
		return
	}
	WriteError(w, errmap.Status(err), err)
}

// WriteError writes the JSON error shape of the plain routes:
// {"code": <status>, "message": "..."}.
func WriteError(w http.ResponseWriter, status int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Del("Content-Encoding")
	w.Header().Del("Content-Length")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}{status, err.Error()})
}
