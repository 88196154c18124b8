package files

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"lelantos.dev/lelantos/internal/envd/identity"
)

// fuzzToken is the access token of the sandbox the fuzz target serves.
const fuzzToken = "fuzz-token"

// fuzzUser is the only existing user the fuzz target acts as: the daemon runs
// as root here, and the kernel keeps this one to what it may touch.
const fuzzUser = "nobody"

// FuzzFilesQuery sends GET, HEAD and POST /files with a fuzzed query (path,
// username, signature, signature_expiration, or anything) and access token
// header, optionally signing the query correctly. "@D" in the query stands for
// a scratch directory. No request may panic or get a 5xx. Requests naming an
// existing user other than nobody are dropped, and a POST is sent only when it
// has no path or its target lies in the scratch directory (a GET of the same
// query otherwise), so that fuzzing writes nothing elsewhere.
func FuzzFilesQuery(f *testing.F) {
	dir := f.TempDir()
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			f.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "f.txt"), []byte("fuzz"), 0o644); err != nil {
		f.Fatal(err)
	}
	nobody, lookErr := identity.Lookup(fuzzUser)
	h := NewHandler(fakeSettings{token: fuzzToken, user: fuzzUser}, nil)
	f.Fuzz(func(t *testing.T, method uint8, query string, sign bool, token string) {
		if lookErr != nil {
			t.Skipf("the host has no %q user", fuzzUser)
		}
		query = strings.ReplaceAll(query, "@D", dir)
		q, _ := url.ParseQuery(query) // what the handler sees: the pairs that parse
		if name := q.Get("username"); name != "" && name != fuzzUser {
			if _, err := identity.Lookup(name); err == nil {
				return
			}
		}
		m := [...]string{http.MethodGet, http.MethodHead, http.MethodPost}[method%3]
		if m == http.MethodPost {
			target, err := nobody.Abs(q.Get("path"), "")
			if q.Get("path") != "" && (err != nil || target != dir && !strings.HasPrefix(target, dir+"/")) {
				m = http.MethodGet
			}
		}
		if sign {
			op := OpRead
			if m == http.MethodPost {
				op = OpWrite
			}
			var exp *int64
			if v, err := strconv.ParseInt(q.Get("signature_expiration"), 10, 64); err == nil {
				exp = &v
			}
			q.Set("signature", Sign(q.Get("path"), op, q.Get("username"), fuzzToken, exp))
			query = q.Encode()
		}
		r := httptest.NewRequest(m, "/files", strings.NewReader("fuzzed body"))
		r.URL.RawQuery = query
		r.Header.Set("Content-Type", "application/octet-stream")
		if token != "" {
			r.Header.Set("X-Access-Token", token)
		}
		w := &headWriter{h: http.Header{}}
		h.ServeHTTP(w, r)
		if w.code >= 500 {
			t.Fatalf("%s /files?%s: status %d: %s", m, query, w.code, w.head)
		}
	})
}

// headWriter is a ResponseWriter that keeps the status and the start of the body.
type headWriter struct {
	h    http.Header
	code int
	head []byte
}

func (w *headWriter) Header() http.Header { return w.h }

func (w *headWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *headWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	if room := 512 - len(w.head); room > 0 {
		w.head = append(w.head, b[:min(room, len(b))]...)
	}
	return len(b), nil
}
