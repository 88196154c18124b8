package proxy

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"testing"
	"time"
)

// TestDropSandboxEndsItsStreams: a stream from a sandbox that goes silent
// without closing (as a killed sandbox's network vanishes) ends at once when
// the sandbox is dropped, its connections are forgotten, and streams from
// other sandboxes go on.
func TestDropSandboxEndsItsStreams(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", useTLS), func(t *testing.T) {
			gone := make(chan struct{})
			t.Cleanup(func() { close(gone) })
			port := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/connect+json")
				io.WriteString(w, "first")
				w.(http.Flusher).Flush()
				select { // silent, never closing: the proxy alone can end this
				case <-gone:
				case <-r.Context().Done():
				}
			}))
			res := fakeResolver{targets: map[string]Target{"abc": {Address: "127.0.0.1"}, "other": {Address: "127.0.0.1"}}}
			p := newTestProxy(t, Config{Domain: "sandbox.test", TLSDir: t.TempDir()}, res)
			scheme, ca := "http", []byte(nil)
			if useTLS {
				scheme = "https"
				var err error
				if ca, err = os.ReadFile(p.CAPath()); err != nil {
					t.Fatal(err)
				}
			}
			client := proxyClient(t, serveProxy(t, p, useTLS), ca, useTLS)
			open := func(id string) io.ReadCloser {
				t.Helper()
				req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, fmt.Sprintf("%s://%d-%s.sandbox.test/stream", scheme, port, id), nil)
				resp, err := client.Do(req)
				if err != nil {
					t.Fatalf("open a stream of %s: %v", id, err)
				}
				if got := readWithin(t, resp.Body, 5); got != "first" {
					t.Fatalf("first chunk of %s: %q", id, got)
				}
				return resp.Body
			}
			killed, other := open("abc"), open("other")
			defer killed.Close()
			defer other.Close()
			if n := p.conns.count("abc"); n != 1 {
				t.Fatalf("%d connections to abc are tracked, want 1", n)
			}

			p.DropSandbox("abc")
			ended := make(chan error, 1)
			go func() { _, err := io.ReadAll(killed); ended <- err }()
			select {
			case err := <-ended:
				if err == nil {
					t.Error("the stream of the dropped sandbox ended as if complete; the client must see it cut")
				}
			case <-time.After(2 * time.Second):
				t.Fatal("the stream of the dropped sandbox still hangs 2s after the drop")
			}
			if n := p.conns.count("abc"); n != 0 {
				t.Errorf("%d connections to abc remain after the drop", n)
			}
			if n := p.conns.count("other"); n != 1 {
				t.Errorf("%d connections to other after abc's drop, want 1", n)
			}
			otherDone := make(chan struct{})
			go func() { _, _ = other.Read(make([]byte, 1)); close(otherDone) }()
			select {
			case <-otherDone:
				t.Error("the other sandbox's stream ended with abc's drop")
			case <-time.After(300 * time.Millisecond):
			}
		})
	}
}

// TestDropSandboxOfUnknownIsHarmless: dropping a sandbox the proxy never
// reached does nothing.
func TestDropSandboxOfUnknownIsHarmless(t *testing.T) {
	p := newTestProxy(t, Config{}, fakeResolver{})
	p.DropSandbox("nothing-here")
	if n := p.conns.count("nothing-here"); n != 0 {
		t.Fatalf("count %d", n)
	}
}
