package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"lelantos.dev/lelantos/internal/controlplane"
)

// createBody is the body of POST /sandboxes and /v2/sandboxes. Pointers
// tell "absent" from a zero value. mcp, iam and other unknown fields are
// accepted and ignored.
type createBody struct {
	TemplateID          *string         `json:"templateID"`
	Timeout             *int64          `json:"timeout"`
	Metadata            rawMap          `json:"metadata"`
	EnvVars             rawMap          `json:"envVars"`
	AutoPause           *bool           `json:"autoPause"`
	AutoPauseMemory     *bool           `json:"autoPauseMemory"`
	AutoResume          *autoResumeBody `json:"autoResume"`
	Secure              *bool           `json:"secure"`
	AllowInternetAccess *bool           `json:"allow_internet_access"`
	Network             *networkBody    `json:"network"`
	VolumeMounts        []volumeMount   `json:"volumeMounts"`
	RuntimeClass        *string         `json:"runtimeClass"`
}

// rawMap is a JSON object whose values must all be strings; it is checked
// after decoding so that an error can name the key.
type rawMap map[string]json.RawMessage

// strings returns m as a string map, or a 400 naming field.key.
func (m rawMap) strings(field string) (map[string]string, error) {
	if m == nil {
		return nil, nil
	}
	out := make(map[string]string, len(m))
	for k, raw := range m {
		var v string
		if err := json.Unmarshal(raw, &v); err != nil || string(raw) == "null" {
			return nil, badf("%s.%s: expected a string, got %s", field, k, jsonKind(raw))
		}
		out[k] = v
	}
	return out, nil
}

// jsonKind names the JSON type of raw.
func jsonKind(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	default:
		return "number"
	}
}

// autoResumeBody is {"enabled": bool}.
type autoResumeBody struct {
	Enabled *bool `json:"enabled"`
}

// isNull reports an absent or JSON null raw value.
func isNull(r json.RawMessage) bool {
	return len(r) == 0 || string(r) == "null"
}

// seconds checks a timeout-like field given in seconds.
func (h *handler) seconds(field string, v *int64, max time.Duration) (time.Duration, error) {
	if v == nil {
		return 0, nil
	}
	if *v < 0 {
		return 0, badf("%s: must not be negative, got %d", field, *v)
	}
	if limit := int64(max / time.Second); *v > limit {
		return 0, badf("%s: must be at most %d seconds, got %d", field, limit, *v)
	}
	return time.Duration(*v) * time.Second, nil
}

// create makes a sandbox: 201 with the Sandbox shape.
func (h *handler) create(w http.ResponseWriter, r *http.Request) {
	var body createBody
	if err := h.decodeBody(w, r, &body); err != nil {
		writeBad(w, err)
		return
	}
	req, err := h.createRequest(&body)
	if err != nil {
		writeBad(w, err)
		return
	}
	sb, err := h.svc.Create(r.Context(), teamOf(r), req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, toSandbox(sb, h.svc.Domain()))
}

// createRequest validates a create body.
func (h *handler) createRequest(b *createBody) (controlplane.CreateRequest, error) {
	var req controlplane.CreateRequest
	req.VolumeMounts = createMounts(b.VolumeMounts)
	timeout, err := h.seconds("timeout", b.Timeout, h.svc.MaxTimeout())
	if err != nil {
		return req, err
	}
	req.Timeout = timeout
	if b.TemplateID != nil {
		req.TemplateID = strings.TrimSpace(*b.TemplateID)
	}
	if b.RuntimeClass != nil {
		req.RuntimeClass = *b.RuntimeClass
	}
	if req.Metadata, err = b.Metadata.strings("metadata"); err != nil {
		return req, err
	}
	if req.EnvVars, err = b.EnvVars.strings("envVars"); err != nil {
		return req, err
	}
	req.AutoPause = b.AutoPause != nil && *b.AutoPause
	req.AutoResume = b.AutoResume != nil && b.AutoResume.Enabled != nil && *b.AutoResume.Enabled
	if req.AutoResume && !req.AutoPause {
		return req, badf("autoResume: can only be enabled together with autoPause")
	}
	if req.AutoPauseFilesOnly = b.AutoPauseMemory != nil && !*b.AutoPauseMemory; req.AutoPauseFilesOnly {
		if !req.AutoPause {
			return req, badf("autoPauseMemory=false only applies when autoPause is true.")
		}
		if req.AutoResume {
			return req, badf("autoPauseMemory: false cannot be combined with autoResume: traffic never resumes a sandbox paused without its memory")
		}
	}
	req.AllowInternetAccess = b.AllowInternetAccess
	if b.Network != nil {
		if err := checkNetwork(b.Network, &req); err != nil {
			return req, err
		}
	}
	return req, nil
}

// get answers GET /sandboxes/{id}.
func (h *handler) get(w http.ResponseWriter, r *http.Request) {
	sb, err := h.svc.Get(r.Context(), teamOf(r), sandboxID(r))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toDetail(sb, h.svc.Domain()))
}

// kill answers DELETE /sandboxes/{id}: 204.
func (h *handler) kill(w http.ResponseWriter, r *http.Request) {
	if err := h.svc.Kill(r.Context(), teamOf(r), sandboxID(r)); err != nil {
		h.fail(w, r, err)
		return
	}
	noContent(w)
}

// listV1 answers GET /sandboxes: every running sandbox, unpaginated.
func (h *handler) listV1(w http.ResponseWriter, r *http.Request) {
	md, err := parseMetadataFilter(r.URL.Query().Get("metadata"))
	if err != nil {
		writeBad(w, err)
		return
	}
	items, err := h.svc.ListRunning(r.Context(), teamOf(r), md)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toListedAll(items))
}

// listV2 answers GET /v2/sandboxes: one page, X-Next-Token when more.
func (h *handler) listV2(w http.ResponseWriter, r *http.Request) {
	req, err := listRequest(r)
	if err != nil {
		writeBad(w, err)
		return
	}
	items, next, err := h.svc.List(r.Context(), teamOf(r), req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if next != "" {
		w.Header().Set("X-Next-Token", next)
	}
	writeJSON(w, http.StatusOK, toListedAll(items))
}

// listRequest reads the query of GET /v2/sandboxes.
func listRequest(r *http.Request) (controlplane.ListRequest, error) {
	q := r.URL.Query()
	var req controlplane.ListRequest
	md, err := parseMetadataFilter(q.Get("metadata"))
	if err != nil {
		return req, err
	}
	req.Metadata = md
	// state=running,paused (form, not exploded) or state=running&state=paused.
	for _, v := range q["state"] {
		for _, st := range strings.Split(v, ",") {
			st = strings.TrimSpace(st)
			if st == "" {
				continue
			}
			if st != controlplane.StateRunning && st != controlplane.StatePaused {
				return req, badf("state: unknown state %q (want running or paused)", st)
			}
			req.States = append(req.States, st)
		}
	}
	limit, ok, err := queryInt(r, "limit")
	if err != nil {
		return req, err
	}
	if ok && (limit < 1 || limit > controlplane.MaxListLimit) {
		return req, badf("limit: must be between 1 and %d, got %d", controlplane.MaxListLimit, limit)
	}
	req.Limit = int(limit)
	req.Cursor = q.Get("nextToken")
	if s := q.Get("startedAfter"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return req, badf("startedAfter: must be an RFC 3339 time, got %q", s)
		}
		req.StartedAfter = t
	}
	req.Template = q.Get("template")
	switch q.Get("order") {
	case "", "desc":
	case "asc":
		req.Ascending = true
	default:
		return req, badf("order: must be asc or desc, got %q", q.Get("order"))
	}
	return req, nil
}
