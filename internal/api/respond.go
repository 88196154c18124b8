package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"

	"lelantos.dev/lelantos/internal/controlplane"
)

// errorBody is every error response: clients read code from the body.
type errorBody struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// writeJSON writes v as JSON with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body, _ = json.Marshal(errorBody{Code: status, Message: "encode response: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeError writes the error body for status.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Code: status, Message: msg})
}

// noContent answers a bodiless success.
func noContent(w http.ResponseWriter) { w.WriteHeader(http.StatusNoContent) }

// statusOf maps a control plane error to its HTTP status.
func statusOf(err error) int {
	switch {
	case errors.Is(err, controlplane.ErrInvalidArgument):
		return http.StatusBadRequest
	case errors.Is(err, controlplane.ErrUnauthenticated):
		return http.StatusUnauthorized
	case errors.Is(err, controlplane.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, controlplane.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, controlplane.ErrUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, controlplane.ErrQuota):
		// Without Retry-After: the clients retry a 429 that has one, and a
		// quota does not free itself on a schedule.
		return http.StatusTooManyRequests
	default:
		return http.StatusInternalServerError
	}
}

// fail answers err with its status; internal errors are also logged.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := statusOf(err)
	if status >= 500 {
		h.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	writeError(w, status, err.Error())
}

// recoverer turns a panic in a handler into a 500 JSON error (and a log
// line with the stack); it must never be needed.
func (h *handler) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			h.log.Error("panic in handler", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
			writeError(w, http.StatusInternalServerError, "internal error")
		}()
		next.ServeHTTP(w, r)
	})
}

// authenticate lets a request through only with a valid X-API-Key (header
// names are case-insensitive), with the caller's principal in its context.
func (h *handler) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := h.auth.Authenticate(r.Context(), r.Header.Get("X-API-Key"))
		if err != nil {
			h.fail(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

// principalKey is the context key of the caller's controlplane.Principal.
type principalKey struct{}

// PrincipalFrom returns the caller of an authenticated request.
func PrincipalFrom(ctx context.Context) (controlplane.Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(controlplane.Principal)
	return p, ok
}

// teamOf is the caller's team ID; "" (which the control plane refuses or
// matches nothing with) outside authenticated routes.
func teamOf(r *http.Request) string {
	p, _ := PrincipalFrom(r.Context())
	return p.TeamID
}
