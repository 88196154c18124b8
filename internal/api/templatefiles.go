package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
)

// Uploads of the step form's files. The e2b SDK PUTs each COPY step's
// archive to the link GET /templates/{templateID}/files/{hash} gives, with
// no API key: the link is this API's own PUT route on the same path, signed
// for the caller's team, the template and the hash, and expiring.

// uploadLinkTTL is how long an upload link stays valid.
const uploadLinkTTL = time.Hour

// fileUploadJSON is E2B's TemplateBuildFileUpload.
type fileUploadJSON struct {
	Present bool   `json:"present"`
	URL     string `json:"url,omitempty"`
}

// hash is the {hash} path parameter.
func hashParam(r *http.Request) string { return chi.URLParam(r, "hash") }

// uploadSignature signs an upload of team's files hash for template until
// expires (Unix seconds).
func (h *handler) uploadSignature(team, template, hash string, expires int64) string {
	m := hmac.New(sha256.New, h.uploadKey)
	fmt.Fprintf(m, "lelantos-upload-v1\x00%s\x00%s\x00%s\x00%d", team, template, hash, expires)
	return hex.EncodeToString(m.Sum(nil))
}

// fileUploadLink answers GET /templates/{templateID}/files/{hash}: 201,
// whether the team has the files already and the link to upload them to.
func (h *handler) fileUploadLink(w http.ResponseWriter, r *http.Request) {
	present, err := h.templates.TemplateFileUpload(r.Context(), teamOf(r), templateID(r), hashParam(r))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	expires := time.Now().Add(uploadLinkTTL).Unix()
	q := url.Values{"team": {teamOf(r)}, "expires": {strconv.FormatInt(expires, 10)},
		"signature": {h.uploadSignature(teamOf(r), templateID(r), hashParam(r), expires)}}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	u := url.URL{Scheme: scheme, Host: r.Host, Path: r.URL.Path, RawQuery: q.Encode()}
	writeJSON(w, http.StatusCreated, fileUploadJSON{Present: present, URL: u.String()})
}

// uploadFile answers PUT /templates/{templateID}/files/{hash}?team=&expires=
// &signature=, authenticated by the signature alone: the body (a tar
// archive, plain or gzip) is stored for the team. 201 with no body.
func (h *handler) uploadFile(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	team, sig := q.Get("team"), q.Get("signature")
	expires, err := strconv.ParseInt(q.Get("expires"), 10, 64)
	if err != nil || team == "" || sig == "" {
		writeError(w, http.StatusForbidden, "upload link: team, expires and signature are required (GET /templates/{templateID}/files/{hash} gives the link)")
		return
	}
	want := h.uploadSignature(team, templateID(r), hashParam(r), expires)
	if !hmac.Equal([]byte(sig), []byte(want)) {
		writeError(w, http.StatusForbidden, "upload link: bad signature")
		return
	}
	if time.Now().Unix() > expires {
		writeError(w, http.StatusForbidden, "upload link: expired; ask for a new one")
		return
	}
	if r.ContentLength > h.maxBuildBody {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("upload of %d bytes is larger than %d bytes, the server's limit", r.ContentLength, h.maxBuildBody))
		return
	}
	body := http.MaxBytesReader(w, r.Body, h.maxBuildBody)
	if err := h.templates.PutTemplateFile(r.Context(), team, templateID(r), hashParam(r), body); err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("upload larger than %d bytes, the server's limit", h.maxBuildBody))
			return
		}
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}
