package envd

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"lelantos.dev/lelantos/internal/envd/files"
	"lelantos.dev/lelantos/internal/envd/settings"
)

// maxInitBody bounds the body of POST /init.
const maxInitBody = 1 << 20

// openRoute reports whether a route needs no access token (GET and POST /files
// check a token or a signature themselves; /init checks its own).
func openRoute(method, path string) bool {
	switch method + " " + path {
	case "GET /health", "HEAD /health", "GET /files", "HEAD /files", "POST /files", "POST /init":
		return true
	}
	return false
}

// withAuth requires X-Access-Token on every route but the open ones once a
// token is set.
func (d *Daemon) withAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d.settings.HasToken() && !openRoute(r.Method, r.URL.Path) &&
			!d.settings.TokenMatches(r.Header.Get("X-Access-Token")) {
			files.WriteError(w, http.StatusUnauthorized, errors.New("unauthorized access, please provide a valid access token or method signing if supported"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// withCORS lets browser clients call the daemon: preflights are answered here
// (before the token check) and every response allows any origin.
func withCORS(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Expose-Headers", "*")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS, HEAD")
			if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
				h.Set("Access-Control-Allow-Headers", req)
			} else {
				h.Set("Access-Control-Allow-Headers", "*")
			}
			h.Set("Access-Control-Max-Age", "7200")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// health answers 204 while the daemon serves.
func (d *Daemon) health(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// init applies the control plane's settings. Its Server-Timing header tells
// the node how long that took here, for the node's traces (the daemon cannot
// reach a collector from inside its sandbox).
func (d *Daemon) init(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	var in settings.Init
	if r.ContentLength != 0 {
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxInitBody))
		if err := dec.Decode(&in); err != nil && !errors.Is(err, io.EOF) {
			files.WriteError(w, http.StatusBadRequest, fmt.Errorf("decode init body: %w", err))
			return
		}
	}
	applied, err := d.settings.Apply(in, r.Header.Get("X-Access-Token"))
	switch {
	case errors.Is(err, settings.ErrTokenMismatch):
		files.WriteError(w, http.StatusUnauthorized, err)
		return
	case err != nil:
		files.WriteError(w, http.StatusBadRequest, err)
		return
	}
	if !applied {
		d.log.Info("ignored an /init older than the last one", "timestamp", in.Timestamp)
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Server-Timing", fmt.Sprintf("init;dur=%.3f", float64(time.Since(start).Microseconds())/1000))
	w.WriteHeader(http.StatusNoContent)
}

// envs returns the sandbox's environment variables.
func (d *Daemon) envs(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, d.settings.Env())
}

// serveMetrics returns the sandbox's resource use.
func (d *Daemon) serveMetrics(w http.ResponseWriter, _ *http.Request) {
	snap, err := d.metrics.Sample()
	if err != nil {
		files.WriteError(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, snap)
}

// writeJSON writes v as a 200 JSON body.
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}
