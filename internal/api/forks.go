package api

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/go-chi/chi/v5"

	"lelantos.dev/lelantos/internal/controlplane"
	"lelantos.dev/lelantos/internal/store"
)

// Forks is what the fork, snapshot and pause-variant routes need from the control
// plane; *controlplane.Service implements it.
type Forks interface {
	Fork(ctx context.Context, teamID, id string, req controlplane.ForkRequest) ([]controlplane.ForkResult, error)
	CreateSnapshot(ctx context.Context, teamID, id string, req controlplane.SnapshotRequest) (*controlplane.SnapshotInfo, error)
	ListSnapshots(ctx context.Context, teamID string, req controlplane.SnapshotListRequest) ([]controlplane.SnapshotInfo, string, error)
	PauseWith(ctx context.Context, teamID, id string, req controlplane.PauseRequest) error
	ConnectWith(ctx context.Context, teamID, id string, req controlplane.ConnectRequest) (*store.Sandbox, bool, error)
}

// forkBody is the body of POST /sandboxes/{id}/fork; both fields are optional.
type forkBody struct {
	Timeout *int64 `json:"timeout"`
	Count   *int64 `json:"count"`
}

// forkResultJSON is one SandboxForkResult: exactly one of the fields.
type forkResultJSON struct {
	Sandbox *sandboxJSON `json:"sandbox,omitempty"`
	Error   *errorBody   `json:"error,omitempty"`
}

// snapshotBody is the body of POST /sandboxes/{id}/snapshots.
type snapshotBody struct {
	Name *string `json:"name"`
}

// snapshotJSON is the SnapshotInfo shape.
type snapshotJSON struct {
	SnapshotID string   `json:"snapshotID"`
	Names      []string `json:"names"`
}

// fork answers POST /sandboxes/{id}/fork: 201 with one entry per fork, each the
// new sandbox or why it was not made.
func (h *handler) fork(w http.ResponseWriter, r *http.Request) {
	var body forkBody
	if err := h.decodeBody(w, r, &body); err != nil {
		writeBad(w, err)
		return
	}
	req := controlplane.ForkRequest{Count: 1}
	if body.Timeout != nil {
		if *body.Timeout <= 0 {
			writeBad(w, badf("timeout: Timeout must be greater than 0, got %d", *body.Timeout))
			return
		}
		d, err := h.seconds("timeout", body.Timeout, h.svc.MaxTimeout())
		if err != nil {
			writeBad(w, err)
			return
		}
		req.Timeout = d
	}
	if body.Count != nil {
		switch c := *body.Count; {
		case c < 1:
			writeBad(w, badf("count: Count must be at least 1, got %d", c))
			return
		case c > controlplane.MaxForks:
			writeBad(w, badf("count: Count cannot be greater than %d, got %d", controlplane.MaxForks, c))
			return
		default:
			req.Count = int(c)
		}
	}
	results, err := h.svc.Fork(r.Context(), teamOf(r), sandboxID(r), req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]forkResultJSON, 0, len(results))
	for _, res := range results {
		if res.Err != nil {
			status := statusOf(res.Err)
			if status >= 500 && status != http.StatusServiceUnavailable {
				h.log.Error("fork failed", "source", sandboxID(r), "err", res.Err)
			}
			out = append(out, forkResultJSON{Error: &errorBody{Code: status, Message: res.Err.Error()}})
			continue
		}
		sb := toSandbox(res.Sandbox, h.svc.Domain())
		out = append(out, forkResultJSON{Sandbox: &sb})
	}
	writeJSON(w, http.StatusCreated, out)
}

// createSnapshot answers POST /sandboxes/{id}/snapshots: 201 SnapshotInfo.
func (h *handler) createSnapshot(w http.ResponseWriter, r *http.Request) {
	var body snapshotBody
	if err := h.decodeBody(w, r, &body); err != nil {
		writeBad(w, err)
		return
	}
	var req controlplane.SnapshotRequest
	if body.Name != nil {
		req.Name = *body.Name
		if strings.TrimSpace(req.Name) == "" {
			writeBad(w, badf("Invalid name: name must not be empty"))
			return
		}
	}
	info, err := h.svc.CreateSnapshot(r.Context(), teamOf(r), sandboxID(r), req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, snapshotJSON{SnapshotID: info.SnapshotID, Names: info.Names})
}

// listSnapshots answers GET /snapshots: a page, X-Next-Token when there is more.
func (h *handler) listSnapshots(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req := controlplane.SnapshotListRequest{SandboxID: q.Get("sandboxID"), Name: q.Get("name"), Cursor: q.Get("nextToken")}
	limit, ok, err := queryInt(r, "limit")
	if err != nil {
		writeBad(w, err)
		return
	}
	if ok && (limit < 1 || limit > controlplane.MaxSnapshotListLimit) {
		writeBad(w, badf("limit: must be between 1 and %d, got %d", controlplane.MaxSnapshotListLimit, limit))
		return
	}
	req.Limit = int(limit)
	infos, next, err := h.svc.ListSnapshots(r.Context(), teamOf(r), req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if next != "" {
		w.Header().Set("X-Next-Token", next)
	}
	out := make([]snapshotJSON, 0, len(infos))
	for _, i := range infos {
		out = append(out, snapshotJSON{SnapshotID: i.SnapshotID, Names: i.Names})
	}
	writeJSON(w, http.StatusOK, out)
}

// pathParam is path parameter name, unescaped: the router matches the escaped
// path, so that an ID holding "/" or ":" (a snapshot's "team/name:tag", sent
// as %2F and %3A) stays one segment.
func pathParam(r *http.Request, name string) string {
	v := chi.URLParam(r, name)
	if u, err := url.PathUnescape(v); err == nil {
		return u
	}
	return v
}
