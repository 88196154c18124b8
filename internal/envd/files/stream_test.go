package files

import (
	"crypto/sha256"
	"encoding/base64"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func b64sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.StdEncoding.EncodeToString(sum[:])[:43]
}

// pattern yields n deterministic bytes without holding them.
type pattern struct{ left, off int64 }

func (p *pattern) Read(b []byte) (int, error) {
	if p.left == 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.left {
		b = b[:p.left]
	}
	for i := range b {
		b[i] = byte((p.off + int64(i)) % 251)
	}
	p.off += int64(len(b))
	p.left -= int64(len(b))
	return len(b), nil
}

// discard is a ResponseWriter that keeps nothing.
type discard struct {
	h    http.Header
	code int
	n    int64
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) WriteHeader(code int)        { d.code = code }
func (d *discard) Write(b []byte) (int, error) { d.n += int64(len(b)); return len(b), nil }

// allocated runs f and returns the bytes the heap allocated meanwhile.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestTransfersStreamWithoutBuffering(t *testing.T) {
	const size = 256 << 20
	const budget = 16 << 20
	root := t.TempDir()
	s := fakeSettings{user: "root"}
	h := s.handler()
	target := filepath.Join(root, "big.bin")
	cases := []struct {
		name string
		run  func(t *testing.T) *discard
	}{
		{"raw upload", func(t *testing.T) *discard {
			r := httptest.NewRequest("POST", "/files?path="+url.QueryEscape(target), &pattern{left: size})
			r.Header.Set("Content-Type", "application/octet-stream")
			w := &discard{h: http.Header{}, code: 200}
			h.ServeHTTP(w, r)
			return w
		}},
		{"multipart upload", func(t *testing.T) *discard {
			pr, pw := io.Pipe()
			mw := multipart.NewWriter(pw)
			go func() {
				part, _ := mw.CreateFormFile("file", "ignored")
				_, err := io.Copy(part, &pattern{left: size})
				if err == nil {
					err = mw.Close()
				}
				_ = pw.CloseWithError(err)
			}()
			r := httptest.NewRequest("POST", "/files?path="+url.QueryEscape(target), pr)
			r.Header.Set("Content-Type", mw.FormDataContentType())
			w := &discard{h: http.Header{}, code: 200}
			h.ServeHTTP(w, r)
			return w
		}},
		{"download", func(t *testing.T) *discard {
			w := &discard{h: http.Header{}, code: 200}
			h.ServeHTTP(w, httptest.NewRequest("GET", "/files?path="+url.QueryEscape(target), nil))
			if w.n != size {
				t.Fatalf("downloaded %d bytes", w.n)
			}
			return w
		}},
		{"gzip download", func(t *testing.T) *discard {
			w := &discard{h: http.Header{}, code: 200}
			r := httptest.NewRequest("GET", "/files?path="+url.QueryEscape(target), nil)
			r.Header.Set("Accept-Encoding", "gzip")
			h.ServeHTTP(w, r)
			return w
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var w *discard
			n := allocated(func() { w = tc.run(t) })
			if w.code != 200 {
				t.Fatalf("status %d", w.code)
			}
			if st, err := os.Stat(target); err != nil || st.Size() != size {
				t.Fatalf("file: %v %v", st, err)
			}
			if n > budget {
				t.Fatalf("moving %d MiB allocated %d MiB", size>>20, n>>20)
			}
			t.Logf("allocated %d KiB", n>>10)
		})
	}
}
