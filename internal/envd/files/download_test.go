package files

import (
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestDownload(t *testing.T) {
	root := openDir(t)
	path := filepath.Join(root, "data.bin")
	content := strings.Repeat("0123456789", 1000)
	must(t, os.WriteFile(path, []byte(content), 0o644))
	must(t, os.WriteFile(filepath.Join(root, "private"), []byte("secret"), 0o600))
	s := fakeSettings{user: "root"}
	get := func(q string, hdr ...string) *http.Request {
		r := httptest.NewRequest("GET", "/files?"+q, nil)
		for i := 0; i < len(hdr); i += 2 {
			r.Header.Set(hdr[i], hdr[i+1])
		}
		return r
	}
	pq := "path=" + url.QueryEscape(path)
	big := filepath.Join(root, "big")
	if err := os.WriteFile(big, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, gzipMaxSize+1); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(root, "fifo")
	must(t, syscall.Mkfifo(fifo, 0o644))
	small := filepath.Join(root, "small")
	must(t, os.WriteFile(small, []byte("twenty bytes of text"), 0o644))
	empty := filepath.Join(root, "empty")
	must(t, os.WriteFile(empty, nil, 0o644))
	cases := []struct {
		name   string
		req    *http.Request
		status int
		check  func(t *testing.T, w *httptest.ResponseRecorder)
	}{
		{"whole file", get(pq), 200, func(t *testing.T, w *httptest.ResponseRecorder) {
			if w.Body.String() != content || w.Header().Get("Content-Length") != strconv.Itoa(len(content)) {
				t.Fatalf("body of %d bytes, length header %q", w.Body.Len(), w.Header().Get("Content-Length"))
			}
		}},
		{"gzip when accepted", get(pq, "Accept-Encoding", "gzip, deflate"), 200, func(t *testing.T, w *httptest.ResponseRecorder) {
			if w.Header().Get("Content-Encoding") != "gzip" {
				t.Fatalf("headers %v", w.Header())
			}
			zr, err := gzip.NewReader(w.Body)
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := io.ReadAll(zr); string(b) != content {
				t.Fatalf("decoded %d bytes", len(b))
			}
		}},
		{"small files are not compressed", get("path="+url.QueryEscape(small), "Accept-Encoding", "gzip, deflate"), 200, func(t *testing.T, w *httptest.ResponseRecorder) {
			if w.Header().Get("Content-Encoding") != "" || w.Body.String() != "twenty bytes of text" {
				t.Fatalf("encoding %q, body %q", w.Header().Get("Content-Encoding"), w.Body)
			}
		}},
		{"gzip refused with q=0", get(pq, "Accept-Encoding", "gzip;q=0"), 200, func(t *testing.T, w *httptest.ResponseRecorder) {
			if w.Header().Get("Content-Encoding") != "" {
				t.Fatal("encoded although refused")
			}
		}},
		{"large files are not compressed", get("path="+url.QueryEscape(big), "Accept-Encoding", "gzip, deflate"), 200, func(t *testing.T, w *httptest.ResponseRecorder) {
			if w.Header().Get("Content-Encoding") != "" || w.Body.Len() != gzipMaxSize+1 {
				t.Fatalf("encoding %q, %d bytes", w.Header().Get("Content-Encoding"), w.Body.Len())
			}
		}},
		{"range", get(pq, "Range", "bytes=10-19"), 206, func(t *testing.T, w *httptest.ResponseRecorder) {
			if w.Body.String() != "0123456789" {
				t.Fatalf("range body %q", w.Body)
			}
		}},
		{"missing", get("path=" + url.QueryEscape(filepath.Join(root, "nope"))), 404, nil},
		{"directory", get("path=" + url.QueryEscape(root)), 400, nil},
		{"unknown user", get(pq + "&username=no-such-user-xyz"), 401, nil},
		{"a FIFO is refused at once", get("path=" + url.QueryEscape(fifo)), 400, nil},
		{"a device is refused", get("path=/dev/zero", "Accept-Encoding", "gzip"), 400, nil},
		{"a kernel pseudo-file is sent as read", get("path=/proc/self/status"), 200, func(t *testing.T, w *httptest.ResponseRecorder) {
			if !strings.HasPrefix(w.Body.String(), "Name:") {
				t.Fatalf("body %.100q", w.Body)
			}
		}},
		{"an empty file", get("path=" + url.QueryEscape(empty)), 200, func(t *testing.T, w *httptest.ResponseRecorder) {
			if w.Body.Len() != 0 {
				t.Fatalf("body %q", w.Body)
			}
		}},
		{"nobody may not read a private file", get("username=nobody&path=" + url.QueryEscape(filepath.Join(root, "private"))), 403, nil},
		{"nobody may read a public file", get("username=nobody&" + pq), 200, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := s.serve(tc.req)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if tc.check != nil {
				tc.check(t, w)
			}
		})
	}
}

func TestSignedAccess(t *testing.T) {
	root := t.TempDir()
	path := filepath.Join(root, "f.txt")
	must(t, os.WriteFile(path, []byte("signed"), 0o644))
	const token = "secret-token"
	s := fakeSettings{token: token, user: "root"}
	now := time.Now().Unix()
	exp := func(d int64) *int64 { v := now + d; return &v }
	signed := func(op, user string, e *int64, sig string) string {
		v := fmt.Sprintf("/files?path=%s", url.QueryEscape(path))
		if user != "" {
			v += "&username=" + user
		}
		if sig == "" {
			sig = Sign(path, op, user, token, e)
		}
		if sig != "-" {
			v += "&signature=" + url.QueryEscape(sig)
		}
		if e != nil {
			v += "&signature_expiration=" + strconv.FormatInt(*e, 10)
		}
		return v
	}
	cases := []struct {
		name    string
		method  string
		target  string
		header  string
		status  int
		message string
	}{
		{"header token", "GET", fmt.Sprintf("/files?path=%s", path), token, 200, ""},
		{"wrong header token", "GET", fmt.Sprintf("/files?path=%s", path), "nope", 401, "access token present in header but does not match"},
		{"nothing", "GET", fmt.Sprintf("/files?path=%s", path), "", 401, "missing signature query parameter"},
		{"signature without expiry", "GET", signed(OpRead, "", nil, ""), "", 200, ""},
		{"signature with expiry", "GET", signed(OpRead, "", exp(60), ""), "", 200, ""},
		{"signature for a user", "GET", signed(OpRead, "root", exp(60), ""), "", 200, ""},
		{"expired", "GET", signed(OpRead, "", exp(-5), ""), "", 401, "signature is already expired"},
		{"tampered", "GET", signed(OpRead, "", exp(60), "v1_AAAA"), "", 401, "invalid signature"},
		{"missing signature", "GET", signed(OpRead, "", exp(60), "-"), "", 401, "missing signature query parameter"},
		{"write signature used to read", "GET", signed(OpWrite, "", exp(60), ""), "", 401, "invalid signature"},
		{"other user's signature", "GET", signed(OpRead, "", exp(60), Sign(path, OpRead, "nobody", token, exp(60))), "", 401, "invalid signature"},
		{"bad expiration", "GET", fmt.Sprintf("/files?path=%s&signature=x&signature_expiration=soon", path), "", 400, ""},
		{"write with a write signature", "POST", signed(OpWrite, "", exp(60), ""), "", 200, ""},
		{"write with a read signature", "POST", signed(OpRead, "", exp(60), ""), "", 401, "invalid signature"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.method == "POST" {
				body = strings.NewReader("signed")
			}
			r := httptest.NewRequest(tc.method, tc.target, body)
			r.Header.Set("Content-Type", "application/octet-stream")
			if tc.header != "" {
				r.Header.Set("X-Access-Token", tc.header)
			}
			w := s.serve(r)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if tc.message != "" {
				want := fmt.Sprintf(`{"code":%d,"message":%q}`, tc.status, tc.message)
				if strings.TrimSpace(w.Body.String()) != want {
					t.Fatalf("body %s, want %s", w.Body, want)
				}
			}
		})
	}
}

func TestSignMatchesTheClientFormula(t *testing.T) {
	exp := int64(1700000000)
	cases := []struct {
		path, op, user string
		exp            *int64
		want           string
	}{
		// Computed with the client's formula: "v1_" + base64(sha256(raw)) without padding.
		{"/home/user/a.txt", "read", "", nil, "v1_" + b64sha("/home/user/a.txt:read::tok")},
		{"/home/user/a.txt", "write", "user", &exp, "v1_" + b64sha("/home/user/a.txt:write:user:tok:1700000000")},
	}
	for _, tc := range cases {
		if got := Sign(tc.path, tc.op, tc.user, "tok", tc.exp); got != tc.want || strings.HasSuffix(got, "=") {
			t.Fatalf("Sign = %s, want %s", got, tc.want)
		}
	}
}
