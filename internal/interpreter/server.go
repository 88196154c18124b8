package interpreter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
)

// maxBody bounds a request body (the code of one cell and its env).
const maxBody = 16 << 20

// Server is the HTTP API of port 49999.
type Server struct {
	m    *Manager
	envd *EnvdClient
	log  *slog.Logger
}

// NewServer serves m's contexts. envd, when set, checks /execute's
// X-Access-Token and gives the sandbox's environment; nil skips both (tests).
func NewServer(m *Manager, envd *EnvdClient, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	return &Server{m: m, envd: envd, log: log}
}

// Handler is the server's routes, with CORS open to any origin.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, "OK") })
	mux.HandleFunc("POST /execute", s.execute)
	mux.HandleFunc("POST /contexts", s.createContext)
	mux.HandleFunc("GET /contexts", s.listContexts)
	mux.HandleFunc("DELETE /contexts/{id}", s.removeContext)
	mux.HandleFunc("POST /contexts/{id}/restart", s.restartContext)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Allow-Methods", "*")
		h.Set("Access-Control-Allow-Headers", "*")
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusOK)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// executeRequest is POST /execute's body; empty strings count as absent.
type executeRequest struct {
	Code      *string           `json:"code"`
	ContextID *string           `json:"context_id"`
	Language  *string           `json:"language"`
	EnvVars   map[string]string `json:"env_vars"`
}

func (s *Server) execute(w http.ResponseWriter, r *http.Request) {
	var req executeRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if req.Code == nil {
		writeValidation(w, "missing", []string{"body", "code"}, "Field required")
		return
	}
	ctxID, lang := deref(req.ContextID), deref(req.Language)
	if ctxID != "" && lang != "" {
		writeText(w, http.StatusBadRequest, "Only one of context_id or language can be provided")
		return
	}
	if err := checkEnvNames(req.EnvVars); err != nil {
		writeText(w, http.StatusBadRequest, err.Error())
		return
	}
	var sandbox map[string]string
	if s.envd != nil {
		envs, err := s.envd.Envs(r.Context(), r.Header.Get("X-Access-Token"))
		switch {
		case errors.Is(err, ErrUnauthorized):
			writeText(w, http.StatusUnauthorized, "X-Access-Token: the sandbox's access token is missing or wrong")
			return
		case err != nil:
			s.log.Error("ask envd for the sandbox's env vars", "err", err)
			writeText(w, http.StatusServiceUnavailable, "cannot reach the sandbox daemon to check X-Access-Token: "+err.Error())
			return
		}
		sandbox = envs
	}
	var (
		c   *Context
		err error
	)
	switch {
	case ctxID != "":
		if c, err = s.m.Get(ctxID); err != nil {
			writeText(w, http.StatusNotFound, fmt.Sprintf("Context %s not found", ctxID))
			return
		}
	default:
		if c, err = s.m.Default(r.Context(), lang); err != nil {
			s.contextError(w, err)
			return
		}
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	out := newStream(w, cancel)
	defer out.close()
	s.m.run(ctx, c, execution{code: *req.Code, env: req.EnvVars, sandbox: sandbox}, out)
}

// createContextRequest is POST /contexts' body.
type createContextRequest struct {
	Language *string `json:"language"`
	Cwd      *string `json:"cwd"`
}

func (s *Server) createContext(w http.ResponseWriter, r *http.Request) {
	var req createContextRequest
	if !decodeBody(w, r, &req) {
		return
	}
	c, err := s.m.Create(r.Context(), deref(req.Language), deref(req.Cwd))
	if err != nil {
		s.contextError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// contextError answers a failed context creation.
func (s *Server) contextError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrUnknownLanguage):
		writeText(w, http.StatusNotFound, "language: "+strings.TrimPrefix(err.Error(), "language "))
	case errors.Is(err, ErrBadCwd):
		writeText(w, http.StatusBadRequest, err.Error())
	default:
		s.log.Error("create context", "err", err)
		writeText(w, http.StatusInternalServerError, err.Error())
	}
}

func (s *Server) listContexts(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.m.List())
}

func (s *Server) removeContext(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := s.m.Remove(id); err != nil {
		writeText(w, http.StatusNotFound, fmt.Sprintf("Context %s not found", id))
		return
	}
	writeJSON(w, http.StatusOK, nil)
}

func (s *Server) restartContext(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	err := s.m.Restart(r.Context(), id)
	switch {
	case errors.Is(err, ErrContextNotFound):
		writeText(w, http.StatusNotFound, fmt.Sprintf("Context %s not found", id))
	case err != nil:
		s.log.Error("restart context", "context", id, "err", err)
		writeText(w, http.StatusInternalServerError, err.Error())
	default:
		writeJSON(w, http.StatusOK, nil)
	}
}

// decodeBody reads a JSON object body; a body that is not one gets a 422 in
// the shape FastAPI gives validation errors. An empty body is an empty object.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeText(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is over %d bytes", maxBody))
		return false
	}
	if strings.TrimSpace(string(b)) == "" {
		b = []byte("{}")
	}
	if err := json.Unmarshal(b, v); err != nil {
		writeValidation(w, "json_invalid", []string{"body"}, "JSON decode error: "+err.Error())
		return false
	}
	return true
}

// writeValidation answers 422 {"detail":[{type, loc, msg}]}.
func writeValidation(w http.ResponseWriter, typ string, loc []string, msg string) {
	writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
		"detail": []map[string]any{{"type": typ, "loc": loc, "msg": msg}},
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeText(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, msg)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return strings.TrimSpace(*s)
}
