package files

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"lelantos.dev/lelantos/internal/envd/fsmeta"
)

// fakeSettings is a Settings with fixed answers.
type fakeSettings struct{ token, user, workdir string }

func (f fakeSettings) Token() (string, bool)      { return f.token, f.token != "" }
func (f fakeSettings) TokenMatches(c string) bool { return f.token != "" && c == f.token }
func (f fakeSettings) DefaultUser() string        { return f.user }
func (f fakeSettings) DefaultWorkdir() string     { return f.workdir }
func (f fakeSettings) handler() *Handler          { return NewHandler(f, nil) }
func (f fakeSettings) serve(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	f.handler().ServeHTTP(w, r)
	return w
}

// openDir returns a temp dir every user may traverse.
func openDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// multipartBody encodes parts (filename -> content) as a form.
func multipartBody(t *testing.T, field string, files [][2]string) (io.Reader, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, f := range files {
		h := make(map[string][]string)
		h["Content-Disposition"] = []string{fmt.Sprintf(`form-data; name=%q; filename=%q`, field, f[0])}
		h["Content-Type"] = []string{"application/octet-stream"}
		pw, err := mw.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = pw.Write([]byte(f[1]))
	}
	_ = mw.Close()
	return &buf, mw.FormDataContentType()
}

func gz(s string) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, _ = zw.Write([]byte(s))
	_ = zw.Close()
	return b.Bytes()
}

func TestUpload(t *testing.T) {
	root := openDir(t)
	if err := os.Mkdir(filepath.Join(root, "shared"), 0o777); err != nil {
		t.Fatal(err)
	}
	must(t, os.Chmod(filepath.Join(root, "shared"), 0o777))
	must(t, os.Mkdir(filepath.Join(root, "adir"), 0o755))
	fifo, readFifo := filepath.Join(root, "fifo"), filepath.Join(root, "read-fifo")
	must(t, syscall.Mkfifo(fifo, 0o644))
	must(t, syscall.Mkfifo(readFifo, 0o644))
	reader, err := os.OpenFile(readFifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	must(t, err)
	defer reader.Close()
	s := fakeSettings{user: "root"}
	q := func(kv ...string) string {
		v := url.Values{}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return "/files?" + v.Encode()
	}
	p := func(n string) string { return filepath.Join(root, n) }
	cases := []struct {
		name    string
		req     func() *http.Request
		status  int
		written []string
		check   func(t *testing.T)
	}{
		{name: "raw body creates parents", req: func() *http.Request {
			r := httptest.NewRequest("POST", q("path", p("raw/deep/a.txt")), strings.NewReader("raw data"))
			r.Header.Set("Content-Type", "application/octet-stream")
			return r
		}, status: 200, written: []string{p("raw/deep/a.txt")}, check: func(t *testing.T) { fileIs(t, p("raw/deep/a.txt"), "raw data") }},
		{name: "raw body needs a path", req: func() *http.Request {
			r := httptest.NewRequest("POST", "/files", strings.NewReader("x"))
			r.Header.Set("Content-Type", "application/octet-stream")
			return r
		}, status: 400},
		{name: "gzip raw body", req: func() *http.Request {
			r := httptest.NewRequest("POST", q("path", p("gz.txt")), bytes.NewReader(gz("unzipped")))
			r.Header.Set("Content-Type", "application/octet-stream")
			r.Header.Set("Content-Encoding", "gzip")
			return r
		}, status: 200, written: []string{p("gz.txt")}, check: func(t *testing.T) { fileIs(t, p("gz.txt"), "unzipped") }},
		{name: "broken gzip", req: func() *http.Request {
			r := httptest.NewRequest("POST", q("path", p("bad.gz")), strings.NewReader("not gzip at all"))
			r.Header.Set("Content-Type", "application/octet-stream")
			r.Header.Set("Content-Encoding", "gzip")
			return r
		}, status: 400},
		{name: "truncated gzip", req: func() *http.Request {
			z := gz(strings.Repeat("abc", 1000))
			r := httptest.NewRequest("POST", q("path", p("trunc.gz")), bytes.NewReader(z[:len(z)/2]))
			r.Header.Set("Content-Type", "application/octet-stream")
			r.Header.Set("Content-Encoding", "gzip")
			return r
		}, status: 400},
		{name: "unknown encoding", req: func() *http.Request {
			r := httptest.NewRequest("POST", q("path", p("br")), strings.NewReader("x"))
			r.Header.Set("Content-Type", "application/octet-stream")
			r.Header.Set("Content-Encoding", "br")
			return r
		}, status: 400},
		{name: "multipart with the path query", req: func() *http.Request {
			body, ct := multipartBody(t, "file", [][2]string{{p("single.txt"), "one"}})
			r := httptest.NewRequest("POST", q("path", p("single.txt")), body)
			r.Header.Set("Content-Type", ct)
			return r
		}, status: 200, written: []string{p("single.txt")}},
		{name: "multipart files named by full path", req: func() *http.Request {
			body, ct := multipartBody(t, "file", [][2]string{{p("m/1.txt"), "1"}, {p("m/sub/2.txt"), "2"}, {"relative-to-home-test.txt", "3"}})
			r := httptest.NewRequest("POST", "/files", body)
			r.Header.Set("Content-Type", ct)
			return r
		}, status: 200, written: []string{p("m/1.txt"), p("m/sub/2.txt"), "/root/relative-to-home-test.txt"}, check: func(t *testing.T) {
			fileIs(t, p("m/sub/2.txt"), "2")
			_ = os.Remove("/root/relative-to-home-test.txt")
		}},
		{name: "multipart twice the same path", req: func() *http.Request {
			body, ct := multipartBody(t, "file", [][2]string{{p("dup"), "1"}, {p("dup"), "2"}})
			r := httptest.NewRequest("POST", "/files", body)
			r.Header.Set("Content-Type", ct)
			return r
		}, status: 400},
		{name: "multipart without a file part", req: func() *http.Request {
			body, ct := multipartBody(t, "other", [][2]string{{p("x"), "1"}})
			r := httptest.NewRequest("POST", "/files", body)
			r.Header.Set("Content-Type", ct)
			return r
		}, status: 400},
		{name: "multipart part without filename", req: func() *http.Request {
			body, ct := multipartBody(t, "file", [][2]string{{"", "1"}})
			r := httptest.NewRequest("POST", "/files", body)
			r.Header.Set("Content-Type", ct)
			return r
		}, status: 400},
		{name: "multipart truncated", req: func() *http.Request {
			body, ct := multipartBody(t, "file", [][2]string{{p("cut"), strings.Repeat("z", 10000)}})
			b, _ := io.ReadAll(body)
			r := httptest.NewRequest("POST", "/files", bytes.NewReader(b[:len(b)-100]))
			r.Header.Set("Content-Type", ct)
			return r
		}, status: 400},
		{name: "multipart garbage", req: func() *http.Request {
			r := httptest.NewRequest("POST", "/files", strings.NewReader("this is not multipart"))
			r.Header.Set("Content-Type", "multipart/form-data; boundary=xyz")
			return r
		}, status: 400},
		{name: "multipart without boundary", req: func() *http.Request {
			r := httptest.NewRequest("POST", "/files", strings.NewReader(""))
			r.Header.Set("Content-Type", "multipart/form-data")
			return r
		}, status: 400},
		{name: "unsupported content type", req: func() *http.Request {
			r := httptest.NewRequest("POST", q("path", p("t")), strings.NewReader("x"))
			r.Header.Set("Content-Type", "text/plain")
			return r
		}, status: 400},
		{name: "no content type", req: func() *http.Request {
			return httptest.NewRequest("POST", q("path", p("t")), strings.NewReader("x"))
		}, status: 400},
		{name: "target is a directory", req: func() *http.Request {
			r := httptest.NewRequest("POST", q("path", p("adir")), strings.NewReader("x"))
			r.Header.Set("Content-Type", "application/octet-stream")
			return r
		}, status: 400},
		{name: "a FIFO without a reader is refused at once", req: func() *http.Request {
			r := httptest.NewRequest("POST", q("path", fifo), strings.NewReader("x"))
			r.Header.Set("Content-Type", "application/octet-stream")
			return r
		}, status: 400},
		{name: "a FIFO with a reader is refused", req: func() *http.Request {
			r := httptest.NewRequest("POST", q("path", readFifo), strings.NewReader("x"))
			r.Header.Set("Content-Type", "application/octet-stream")
			return r
		}, status: 400},
		{name: "parent is a file", req: func() *http.Request {
			r := httptest.NewRequest("POST", q("path", p("raw/deep/a.txt/below")), strings.NewReader("x"))
			r.Header.Set("Content-Type", "application/octet-stream")
			return r
		}, status: 400},
		{name: "unknown user", req: func() *http.Request {
			r := httptest.NewRequest("POST", q("path", p("u"), "username", "no-such-user-xyz"), strings.NewReader("x"))
			r.Header.Set("Content-Type", "application/octet-stream")
			return r
		}, status: 401},
		{name: "nobody may not write a root directory", req: func() *http.Request {
			r := httptest.NewRequest("POST", q("path", p("denied.txt"), "username", "nobody"), strings.NewReader("x"))
			r.Header.Set("Content-Type", "application/octet-stream")
			return r
		}, status: 403},
		{name: "nobody may not make a missing parent in a root directory", req: func() *http.Request {
			// As a missing /etc/sudoers.d under /etc: E2B's daemon would make it, root-owned-looking.
			r := httptest.NewRequest("POST", q("path", p("sudoers.d/planted"), "username", "nobody"), strings.NewReader("x"))
			r.Header.Set("Content-Type", "application/octet-stream")
			return r
		}, status: 403, check: func(t *testing.T) {
			if _, err := os.Lstat(p("sudoers.d")); !os.IsNotExist(err) {
				t.Fatalf("the refused write left %s: %v", p("sudoers.d"), err)
			}
		}},
		{name: "nobody owns what it writes, parents too", req: func() *http.Request {
			r := httptest.NewRequest("POST", q("path", p("shared/n/deeper/f.txt"), "username", "nobody"), strings.NewReader("x"))
			r.Header.Set("Content-Type", "application/octet-stream")
			return r
		}, status: 200, written: []string{p("shared/n/deeper/f.txt")}, check: func(t *testing.T) {
			for _, f := range []string{p("shared/n"), p("shared/n/deeper"), p("shared/n/deeper/f.txt")} {
				var st syscall.Stat_t
				if err := syscall.Stat(f, &st); err != nil || st.Uid != 65534 || st.Gid != 65534 {
					t.Fatalf("%s owned by %d:%d (%v)", f, st.Uid, st.Gid, err)
				}
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := s.serve(tc.req())
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if tc.status != 200 {
				var e struct {
					Code    int    `json:"code"`
					Message string `json:"message"`
				}
				if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Code != tc.status || e.Message == "" {
					t.Fatalf("error body %q", w.Body)
				}
				if tc.check != nil {
					tc.check(t)
				}
				return
			}
			var got []Written
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.written) {
				t.Fatalf("reply %+v, want %v", got, tc.written)
			}
			for i := range got {
				if got[i].Path != tc.written[i] || got[i].Type != "file" || got[i].Name != filepath.Base(tc.written[i]) {
					t.Fatalf("entry %d: %+v", i, got[i])
				}
			}
			if tc.check != nil {
				tc.check(t)
			}
		})
	}
}

// TestUploadMetadata: each write makes the file's metadata what its headers
// say (none clears it, as E2B's daemon does), and metadata that cannot be
// stored is a 400 that leaves the file as it was.
func TestUploadMetadata(t *testing.T) {
	steps := []struct {
		name    string
		headers map[string]string
		status  int
		want    string // the stored metadata, and the content after the step
		content string
	}{
		{"set two", map[string]string{"Author": "me", "x-Purpose": "test"}, 200, "map[author:me x-purpose:test]", "1"},
		{"replace", map[string]string{"only": "this"}, 200, "map[only:this]", "2"},
		{"overwrite without metadata clears it", nil, 200, "map[]", "3"},
		{"set again", map[string]string{"k": "v"}, 200, "map[k:v]", "4"},
		{"a value that is not ASCII", map[string]string{"k": "caf\u00e9"}, 400, "map[k:v]", "4"},
		{"too much", map[string]string{"k": strings.Repeat("v", fsmeta.MaxTotalLen)}, 400, "map[k:v]", "4"},
	}
	for _, user := range []string{"root", "nobody"} {
		t.Run(user, func(t *testing.T) {
			root := openDir(t)
			must(t, os.Chmod(root, 0o777))
			path := filepath.Join(root, "m.txt")
			s := fakeSettings{user: user}
			for i, st := range steps {
				r := httptest.NewRequest("POST", "/files?path="+url.QueryEscape(path), strings.NewReader(fmt.Sprint(i+1)))
				r.Header.Set("Content-Type", "application/octet-stream")
				for k, v := range st.headers {
					r.Header.Set(fsmeta.HeaderPrefix+k, v)
				}
				w := s.serve(r)
				if w.Code == 500 && strings.Contains(w.Body.String(), "not supported") {
					t.Skipf("the temp filesystem keeps no user xattrs: %s", w.Body)
				}
				if w.Code != st.status {
					t.Fatalf("%s: %d %s, want %d", st.name, w.Code, w.Body, st.status)
				}
				stored, err := fsmeta.Read(path)
				if stored == nil {
					stored = map[string]string{}
				}
				if err != nil || fmt.Sprint(stored) != st.want {
					t.Fatalf("%s: stored %v (%v), want %s", st.name, stored, err, st.want)
				}
				fileIs(t, path, st.content)
				if st.status != 200 {
					if !strings.Contains(w.Body.String(), fsmeta.HeaderPrefix) {
						t.Errorf("%s: the error does not name the header: %s", st.name, w.Body)
					}
					continue
				}
				var got []Written
				if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || len(got) != 1 {
					t.Fatalf("%s: reply %s", st.name, w.Body)
				}
				if reply := got[0].Metadata; (reply == nil && st.want != "map[]") || (reply != nil && fmt.Sprint(reply) != st.want) {
					t.Errorf("%s: reply metadata %v, want %s", st.name, reply, st.want)
				}
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func fileIs(t *testing.T, path, want string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || string(b) != want {
		t.Fatalf("%s holds %q (%v), want %q", path, b, err, want)
	}
}
