package api

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"lelantos.dev/lelantos/internal/controlplane"
	"lelantos.dev/lelantos/internal/store"
)

// TestStreamedBuild: the build context as the body itself, the fields in
// the query, in each archive media type.
func TestStreamedBuild(t *testing.T) {
	archive := tarOf(t, map[string]string{"hello.sh": "echo hi\n"})
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(archive)
	zw.Close()
	q := url.Values{"name": {"web"}, "dockerfile": {"FROM base\nCOPY hello.sh /\n"}, "startCmd": {"serve --port 8080"},
		"readyCmd": {"curl -sf localhost:8080"}, "cpuCount": {"1"}, "memoryMB": {"256"}, "diskSizeMB": {"512"},
		"buildArg": {"V=1", "W=a=b"}}
	tests := []struct {
		name, contentType string
		body              []byte
		length            int64
	}{
		{"tar", "application/x-tar", archive, int64(len(archive))},
		{"gzip", "application/gzip", gz.Bytes(), int64(gz.Len())},
		{"gzip, old name, chunked", "application/x-gzip", gz.Bytes(), -1},
		{"tar with parameters", "application/x-tar; charset=binary", archive, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			r := e.doStream("POST", "/templates?"+q.Encode(), tt.contentType, bytes.NewReader(tt.body), tt.length)
			if r.Status != http.StatusAccepted {
				t.Fatalf("status %d: %s", r.Status, r.Body)
			}
			var started buildStartedJSON
			r.decode(t, &started)
			req := e.builder.requests[started.BuildID]
			if started.TemplateID != "web" || req.Dockerfile != q.Get("dockerfile") || req.StartCmd != "serve --port 8080" ||
				req.ReadyCmd != "curl -sf localhost:8080" || req.CPUCount != 1 || req.MemoryMB != 256 || req.DiskSizeMB != 512 ||
				len(req.BuildArgs) != 2 || req.BuildArgs["V"] != "1" || req.BuildArgs["W"] != "a=b" {
				t.Errorf("the builder got %+v", req)
			}
			if got := e.builder.contexts[started.BuildID]; !bytes.Equal(got, tt.body) {
				t.Errorf("the builder read %d bytes of context, want the %d sent", len(got), len(tt.body))
			}
		})
	}
	t.Run("no context", func(t *testing.T) {
		e := newEnv(t)
		r := e.doStream("POST", "/templates?name=empty&dockerfile=FROM%20base", "application/x-tar", http.NoBody, 0)
		if r.Status != http.StatusAccepted {
			t.Fatalf("status %d: %s", r.Status, r.Body)
		}
	})
}

func TestStreamedBuildBadInput(t *testing.T) {
	e := newEnv(t)
	archive := tarOf(t, map[string]string{"a": "b"})
	tests := []struct {
		name, query, wantField string
	}{
		{"no name", "dockerfile=FROM%20base", "name: required"},
		{"no dockerfile", "name=web", "dockerfile: required"},
		{"empty dockerfile", "name=web&dockerfile=", "dockerfile: required"},
		{"bad name", "name=Web&dockerfile=FROM%20base", "name: "},
		{"cpuCount word", "name=web&dockerfile=FROM%20base&cpuCount=two", "cpuCount: "},
		{"memoryMB too little", "name=web&dockerfile=FROM%20base&memoryMB=1", "memoryMB: "},
		{"buildArg without value", "name=web&dockerfile=FROM%20base&buildArg=V", "buildArg: "},
		{"buildArg without name", "name=web&dockerfile=FROM%20base&buildArg=%3Dv", "buildArgs: "},
		{"readyCmd alone", "name=web&dockerfile=FROM%20base&readyCmd=true", "readyCmd: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(e.builder.requests)
			r := e.doStream("POST", "/templates?"+tt.query, "application/x-tar", bytes.NewReader(archive), int64(len(archive)))
			if r.Status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", r.Status, r.Body)
			}
			if msg := r.errorMessage(t); !strings.HasPrefix(msg, tt.wantField) {
				t.Errorf("message %q does not start with %q", msg, tt.wantField)
			}
			if len(e.builder.requests) != before {
				t.Errorf("the builder was asked to build")
			}
		})
	}
}

// endless is a reader of n bytes of 'x' that is never held in memory.
type endless struct{ n int64 }

func (r *endless) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	k := int(min(int64(len(p)), r.n))
	for i := range p[:k] {
		p[i] = 'x'
	}
	r.n -= int64(k)
	return k, nil
}

// TestBuildBodyLimits: the JSON form stops at 16 MiB with a message that
// says how to send a large context; the streamed form takes more, up to
// MaxBuildBodyBytes, and a 413 names that limit whether the length is
// announced or not. No build is left behind by a refused one.
func TestBuildBodyLimits(t *testing.T) {
	e := newEnv(t)
	const limit = 20 << 20
	e.h = NewHandler(e.svc, controlplane.NewAuthenticator(e.db, nil), Options{Logger: quiet(), Spec: nil, Templates: e.svc,
		MaxBuildBodyBytes: limit})
	big := `{"name":"big","dockerfile":"FROM base","context":"` + base64.StdEncoding.EncodeToString(make([]byte, 13<<20)) + `"}`
	r := e.do("POST", "/templates", big)
	if r.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("a %d-byte JSON build: status %d, want 413", len(big), r.Status)
	}
	if msg := r.errorMessage(t); !strings.Contains(msg, "16777216 bytes") || !strings.Contains(msg, "Content-Type application/x-tar") {
		t.Errorf("413 of the JSON form: %q, want the limit and how to stream", msg)
	}

	const df = "?name=big&dockerfile=FROM%20base"
	r = e.doStream("POST", "/templates"+df, "application/x-tar", &endless{n: 18 << 20}, 18<<20)
	if r.Status != http.StatusAccepted {
		t.Fatalf("an 18 MiB streamed context: status %d: %s", r.Status, r.Body)
	}
	builds := len(e.builder.requests)
	for _, length := range []int64{limit + 1, -1} {
		r = e.doStream("POST", "/templates"+df, "application/x-tar", &endless{n: limit + 1}, length)
		if r.Status != http.StatusRequestEntityTooLarge {
			t.Fatalf("a streamed context over the limit (length %d): status %d: %s", length, r.Status, r.Body)
		}
		if msg := r.errorMessage(t); !strings.Contains(msg, "20971520 bytes, the server's limit") {
			t.Errorf("413 of the streamed form: %q, want the limit", msg)
		}
	}
	if got := len(e.builder.requests); got != builds {
		t.Errorf("%d builds started by refused requests", got-builds)
	}
	if running, err := e.db.ListRunningBuilds(t.Context(), store.DefaultTeamID); err != nil || len(running) != 1 {
		t.Errorf("build records after refused requests: %d %v, want the one accepted", len(running), err)
	}
}
