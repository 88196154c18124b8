package api

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"lelantos.dev/lelantos/internal/controlplane"
	"lelantos.dev/lelantos/internal/volume"
)

// The volume content API (E2B's openapi-volumecontent.yml): the files of one
// volume, for the holder of its token (Authorization: Bearer), never an API key.
// Paths are absolute inside the volume; the volume's content is untrusted and is
// only ever touched through volume.Tree.

// contentErrorBody is this API's error: its code is a string, as E2B's spec has it.
type contentErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// writeContentError writes the error body for status.
func writeContentError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, contentErrorBody{Code: strconv.Itoa(status), Message: msg})
}

// contentStatus maps a volume or control plane error to its status.
func contentStatus(err error) int {
	switch {
	case errors.Is(err, volume.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, volume.ErrExists):
		return http.StatusConflict
	case errors.Is(err, volume.ErrNoSpace):
		return http.StatusInsufficientStorage
	case errors.Is(err, volume.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, controlplane.ErrUnauthenticated), errors.Is(err, controlplane.ErrInvalidArgument),
		errors.Is(err, controlplane.ErrNotFound), errors.Is(err, controlplane.ErrUnavailable):
		return statusOf(err)
	default:
		return http.StatusInternalServerError
	}
}

// contentFail answers err with its status; internal errors are also logged.
func (h *handler) contentFail(w http.ResponseWriter, r *http.Request, err error) {
	status := contentStatus(err)
	if status >= 500 && status != http.StatusInsufficientStorage {
		h.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	writeContentError(w, status, err.Error())
}

// entryJSON is the VolumeEntryStat shape.
type entryJSON struct {
	Name   string    `json:"name"`
	Type   string    `json:"type"`
	Path   string    `json:"path"`
	Size   int64     `json:"size"`
	Mode   uint32    `json:"mode"`
	UID    uint32    `json:"uid"`
	GID    uint32    `json:"gid"`
	Atime  time.Time `json:"atime"`
	Mtime  time.Time `json:"mtime"`
	Ctime  time.Time `json:"ctime"`
	Target string    `json:"target,omitempty"`
}

func toEntry(e volume.Entry) entryJSON {
	return entryJSON{Name: e.Name, Type: string(e.Type), Path: e.Path, Size: e.Size, Mode: e.Mode,
		UID: e.UID, GID: e.GID, Atime: e.Atime, Mtime: e.Mtime, Ctime: e.Ctime, Target: e.Target}
}

// contentHandler is a content route given the volume's tree and the request's path.
type contentHandler func(w http.ResponseWriter, r *http.Request, t *volume.Tree, path string)

// content authenticates a content request by its bearer token, opens the volume
// and runs fn with the path query parameter (required).
func (h *handler) content(fn contentHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if h.volumes == nil {
			writeContentError(w, http.StatusForbidden, "use of volumes is not enabled")
			return
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			writeContentError(w, http.StatusUnauthorized, "Authorization: a volume token is required (Bearer)")
			return
		}
		t, err := h.volumes.OpenVolume(r.Context(), volumeID(r), strings.TrimSpace(tok))
		if err != nil {
			h.contentFail(w, r, err)
			return
		}
		defer t.Close()
		p := r.URL.Query().Get("path")
		if p == "" {
			writeContentError(w, http.StatusBadRequest, "path: required")
			return
		}
		fn(w, r, t, p)
	}
}

// attrsQuery reads the uid, gid and mode query parameters.
func attrsQuery(r *http.Request) (volume.Attrs, error) {
	var a volume.Attrs
	for _, f := range []struct {
		name string
		dst  **uint32
		max  uint64
	}{{"uid", &a.UID, 1<<32 - 1}, {"gid", &a.GID, 1<<32 - 1}, {"mode", &a.Mode, 0o7777}} {
		s := r.URL.Query().Get(f.name)
		if s == "" {
			continue
		}
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil || n > f.max {
			return a, badf("%s: must be an integer from 0 to %d, got %q", f.name, f.max, s)
		}
		v := uint32(n)
		*f.dst = &v
	}
	return a, nil
}

// forceQuery reads the force query parameter.
func forceQuery(r *http.Request) (bool, error) {
	s := r.URL.Query().Get("force")
	if s == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, badf("force: must be true or false, got %q", s)
	}
	return b, nil
}

// writeContentBad answers a bad query or body.
func writeContentBad(w http.ResponseWriter, err error) {
	var br *badRequest
	if errors.As(err, &br) {
		writeContentError(w, br.status, br.msg)
		return
	}
	writeContentError(w, http.StatusBadRequest, err.Error())
}

// listDir answers GET /volumecontent/{volumeID}/dir: the entries below path,
// depth levels deep (1 by default).
func (h *handler) listDir(w http.ResponseWriter, r *http.Request, t *volume.Tree, p string) {
	depth := 1
	if s := r.URL.Query().Get("depth"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			writeContentError(w, http.StatusBadRequest, "depth: must be a positive integer, got "+strconv.Quote(s))
			return
		}
		depth = n
	}
	ents, err := t.List(p, depth)
	if err != nil {
		h.contentFail(w, r, err)
		return
	}
	out := make([]entryJSON, 0, len(ents))
	for _, e := range ents {
		out = append(out, toEntry(e))
	}
	writeJSON(w, http.StatusOK, out)
}

// makeDir answers POST /volumecontent/{volumeID}/dir: 201 with the directory.
func (h *handler) makeDir(w http.ResponseWriter, r *http.Request, t *volume.Tree, p string) {
	a, err := attrsQuery(r)
	if err != nil {
		writeContentBad(w, err)
		return
	}
	force, err := forceQuery(r)
	if err != nil {
		writeContentBad(w, err)
		return
	}
	e, err := t.MakeDir(p, a, force)
	if err != nil {
		h.contentFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, toEntry(e))
}

// statPath answers GET /volumecontent/{volumeID}/path.
func (h *handler) statPath(w http.ResponseWriter, r *http.Request, t *volume.Tree, p string) {
	e, err := t.Stat(p)
	if err != nil {
		h.contentFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toEntry(e))
}

// attrsBody is the body of PATCH /volumecontent/{volumeID}/path.
type attrsBody struct {
	UID  *uint32 `json:"uid"`
	GID  *uint32 `json:"gid"`
	Mode *uint32 `json:"mode"`
}

// updatePath answers PATCH /volumecontent/{volumeID}/path: 200 with the entry.
func (h *handler) updatePath(w http.ResponseWriter, r *http.Request, t *volume.Tree, p string) {
	var body attrsBody
	if err := h.decodeBody(w, r, &body); err != nil {
		writeContentBad(w, err)
		return
	}
	if body.Mode != nil && *body.Mode > 0o7777 {
		writeContentError(w, http.StatusBadRequest, "mode: must be at most 0o7777 (4095)")
		return
	}
	e, err := t.SetAttrs(p, volume.Attrs{UID: body.UID, GID: body.GID, Mode: body.Mode})
	if err != nil {
		h.contentFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toEntry(e))
}

// removePath answers DELETE /volumecontent/{volumeID}/path: 204, recursively.
func (h *handler) removePath(w http.ResponseWriter, r *http.Request, t *volume.Tree, p string) {
	if err := t.Remove(p); err != nil {
		h.contentFail(w, r, err)
		return
	}
	noContent(w)
}

// readFile answers GET /volumecontent/{volumeID}/file: the file's bytes (ranges
// and conditional requests as net/http serves them).
func (h *handler) readFile(w http.ResponseWriter, r *http.Request, t *volume.Tree, p string) {
	f, e, err := t.Open(p)
	if err != nil {
		h.contentFail(w, r, err)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, "", e.Mtime, f)
}

// writeFile answers PUT /volumecontent/{volumeID}/file: the body becomes the file
// (replacing one only with force=true); 201 with the file.
func (h *handler) writeFile(w http.ResponseWriter, r *http.Request, t *volume.Tree, p string) {
	a, err := attrsQuery(r)
	if err != nil {
		writeContentBad(w, err)
		return
	}
	force, err := forceQuery(r)
	if err != nil {
		writeContentBad(w, err)
		return
	}
	// The volume's size bounds the body: past it the write fails with 507.
	e, err := t.Write(p, bodyReader{r.Body}, a, force)
	if errors.Is(err, errBody) {
		writeContentError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err != nil {
		h.contentFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, toEntry(e))
}

// bodyReader marks the errors of reading a request body, so that a client going
// away mid-upload is told apart from the volume failing.
type bodyReader struct{ r io.Reader }

// errBody is a failure to read the request body.
var errBody = errors.New("read request body")

func (b bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		err = errors.Join(errBody, err)
	}
	return n, err
}
