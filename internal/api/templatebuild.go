package api

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"strings"
	"sync/atomic"

	"lelantos.dev/lelantos/internal/controlplane"
)

// Bounds of POST /templates.
const (
	// defaultMaxBuildBody bounds the streamed form's body, the build
	// context itself, when Options.MaxBuildBodyBytes is 0.
	defaultMaxBuildBody = 512 << 20
	// maxJSONBuildBody bounds the JSON form's body, whose base64 context is
	// held in memory while it is read.
	maxJSONBuildBody = 16 << 20
)

// archiveTypes are the media types of the streamed form of POST /templates:
// the body is the build context, a tar stream, plain or gzip-compressed.
var archiveTypes = []string{"application/x-tar", "application/gzip", "application/x-gzip"}

// isArchive reports whether the request's body is a build context archive.
func isArchive(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return false
	}
	for _, t := range archiveTypes {
		if mt == t {
			return true
		}
	}
	return false
}

// buildBody is the JSON body of POST /templates.
type buildBody struct {
	Name       *string `json:"name"`
	Dockerfile *string `json:"dockerfile"`
	// Context is base64 of a tar or tar.gz of the build context.
	Context    *string `json:"context"`
	StartCmd   *string `json:"startCmd"`
	ReadyCmd   *string `json:"readyCmd"`
	CPUCount   *int64  `json:"cpuCount"`
	MemoryMB   *int64  `json:"memoryMB"`
	DiskSizeMB *int64  `json:"diskSizeMB"`
	BuildArgs  rawMap  `json:"buildArgs"`
}

// buildTemplate answers POST /templates: the build starts, 202 with its ID.
// The body is either JSON with the context in base64 (small contexts), or
// the context archive itself with the other fields in the query.
func (h *handler) buildTemplate(w http.ResponseWriter, r *http.Request) {
	var (
		req  controlplane.TemplateBuildRequest
		body *cappedBody
		err  error
	)
	if isArchive(r) {
		req, body, err = h.streamedBuild(w, r)
	} else {
		req, err = h.jsonBuild(w, r)
	}
	if err != nil {
		writeBad(w, err)
		return
	}
	tid, id, err := h.templates.BuildTemplate(r.Context(), teamOf(r), req)
	if body != nil && body.tooBig.Load() {
		// Whatever the builder made of the cut-off stream.
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf(
			"build context larger than %d bytes, the server's limit", h.maxBuildBody))
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, buildStartedJSON{TemplateID: tid, BuildID: id})
}

// jsonBuild reads the JSON form, at most maxJSONBuildBody bytes (or the
// streamed form's limit, when lower).
func (h *handler) jsonBuild(w http.ResponseWriter, r *http.Request) (controlplane.TemplateBuildRequest, error) {
	var body buildBody
	if err := h.decodeBodyLimit(w, r, &body, min(maxJSONBuildBody, h.maxBuildBody)); err != nil {
		var br *badRequest
		if errors.As(err, &br) && br.status == http.StatusRequestEntityTooLarge {
			br.msg += fmt.Sprintf(": send a larger build context as the request body itself, with Content-Type "+
				"application/x-tar or application/gzip and the other fields as query parameters (up to %d bytes)", h.maxBuildBody)
		}
		return controlplane.TemplateBuildRequest{}, err
	}
	return buildRequest(&body)
}

// streamedBuild reads the fields of the streamed form from the query and
// hands the body, bounded by MaxBuildBodyBytes, to the builder as it
// arrives.
func (h *handler) streamedBuild(w http.ResponseWriter, r *http.Request) (controlplane.TemplateBuildRequest, *cappedBody, error) {
	q := r.URL.Query()
	var b buildBody
	for _, f := range []struct {
		name string
		dst  **string
	}{{"name", &b.Name}, {"dockerfile", &b.Dockerfile}, {"startCmd", &b.StartCmd}, {"readyCmd", &b.ReadyCmd}} {
		if q.Has(f.name) {
			v := q.Get(f.name)
			*f.dst = &v
		}
	}
	for _, f := range []struct {
		name string
		dst  **int64
	}{{"cpuCount", &b.CPUCount}, {"memoryMB", &b.MemoryMB}, {"diskSizeMB", &b.DiskSizeMB}} {
		n, ok, err := queryInt(r, f.name)
		if err != nil {
			return controlplane.TemplateBuildRequest{}, nil, err
		}
		if ok {
			*f.dst = &n
		}
	}
	req, err := buildRequest(&b)
	if err != nil {
		return req, nil, err
	}
	for _, kv := range q["buildArg"] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return req, nil, badf("buildArg: want KEY=VALUE, got %q", kv)
		}
		if req.BuildArgs == nil {
			req.BuildArgs = map[string]string{}
		}
		req.BuildArgs[k] = v
	}
	if r.ContentLength > h.maxBuildBody {
		return req, nil, &badRequest{status: http.StatusRequestEntityTooLarge,
			msg: fmt.Sprintf("build context of %d bytes is larger than %d bytes, the server's limit", r.ContentLength, h.maxBuildBody)}
	}
	if r.ContentLength == 0 {
		return req, nil, nil // no context
	}
	body := &cappedBody{r: http.MaxBytesReader(w, r.Body, h.maxBuildBody)}
	req.Context = body
	return req, body, nil
}

// cappedBody is a request body cut off by http.MaxBytesReader that
// remembers whether it was, whatever its reader made of the error.
type cappedBody struct {
	r      io.Reader
	tooBig atomic.Bool
}

func (c *cappedBody) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		c.tooBig.Store(true)
	}
	return n, err
}

// buildRequest checks the form of a build body; the control plane checks
// the values.
func buildRequest(b *buildBody) (controlplane.TemplateBuildRequest, error) {
	var req controlplane.TemplateBuildRequest
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	req.Name, req.Dockerfile = strings.TrimSpace(str(b.Name)), str(b.Dockerfile)
	req.StartCmd, req.ReadyCmd = str(b.StartCmd), str(b.ReadyCmd)
	if b.Name == nil {
		return req, badf("name: required")
	}
	if b.Dockerfile == nil {
		return req, badf("dockerfile: required")
	}
	for _, f := range []struct {
		name string
		v    *int64
		dst  *int
	}{{"cpuCount", b.CPUCount, &req.CPUCount}, {"memoryMB", b.MemoryMB, &req.MemoryMB}, {"diskSizeMB", b.DiskSizeMB, &req.DiskSizeMB}} {
		if f.v == nil {
			continue
		}
		if *f.v < math.MinInt32 || *f.v > math.MaxInt32 {
			return req, badf("%s: out of range, got %d", f.name, *f.v)
		}
		*f.dst = int(*f.v)
	}
	var err error
	if req.BuildArgs, err = b.BuildArgs.strings("buildArgs"); err != nil {
		return req, err
	}
	if c := str(b.Context); c != "" {
		// Check the encoding whole before the builder reads any of it.
		if _, err := io.Copy(io.Discard, base64.NewDecoder(base64.StdEncoding, strings.NewReader(c))); err != nil {
			return req, badf("context: not base64 (of a tar or tar.gz archive): %v", err)
		}
		req.Context = base64.NewDecoder(base64.StdEncoding, strings.NewReader(c))
	}
	return req, nil
}
