package proxy

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// stepTimeout bounds every wait for data that must arrive unbuffered.
const stepTimeout = 5 * time.Second

// readWithin reads exactly n bytes from r or fails the test after
// stepTimeout.
func readWithin(t *testing.T, r io.Reader, n int) string {
	t.Helper()
	type result struct {
		s   string
		err error
	}
	ch := make(chan result, 1)
	go func() {
		b := make([]byte, n)
		_, err := io.ReadFull(r, b)
		ch <- result{string(b), err}
	}()
	select {
	case res := <-ch:
		if res.err != nil {
			t.Fatalf("read %d bytes: %v", n, res.err)
		}
		return res.s
	case <-time.After(stepTimeout):
		t.Fatalf("no %d bytes within %v: the proxy buffers", n, stepTimeout)
		return ""
	}
}

// TestStreamingResponse: the backend sends a first chunk and sends the last
// only after the client has received the first.
func TestStreamingResponse(t *testing.T) {
	tests := []struct {
		name          string
		contentType   string
		contentLength bool
		tls           bool
	}{
		{"server-sent events", "text/event-stream", false, false},
		{"connect stream", "application/connect+json", false, false},
		{"octets with length", "application/octet-stream", true, false},
		{"server-sent events over h2", "text/event-stream", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			port := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.contentType)
				if tt.contentLength {
					w.Header().Set("Content-Length", "10")
				}
				io.WriteString(w, "first")
				w.(http.Flusher).Flush()
				select {
				case <-release:
					io.WriteString(w, "last.")
				case <-r.Context().Done():
				}
			}))
			releaseOnce := sync.OnceFunc(func() { close(release) })
			defer releaseOnce() // let the backend end when the test fails
			client, url := streamClient(t, tt.tls, port)
			ctx, cancel := context.WithTimeout(t.Context(), stepTimeout)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("no response headers: %v", err)
			}
			defer resp.Body.Close()
			if got := readWithin(t, resp.Body, 5); got != "first" {
				t.Fatalf("first chunk %q", got)
			}
			releaseOnce()
			if got := readWithin(t, resp.Body, 5); got != "last." {
				t.Fatalf("last chunk %q", got)
			}
			if ct := resp.Header.Get("Content-Type"); ct != tt.contentType {
				t.Errorf("Content-Type %q, want %q", ct, tt.contentType)
			}
		})
	}
}

// streamClient returns a client and the URL of port of sandbox "abc"
// through a proxy, plain HTTP/1.1 or HTTP/2 over TLS.
func streamClient(t *testing.T, useTLS bool, port int) (*http.Client, string) {
	t.Helper()
	res := fakeResolver{targets: map[string]Target{"abc": {Address: "127.0.0.1"}}}
	if !useTLS {
		addr := serveProxy(t, newTestProxy(t, Config{}, res), false)
		return proxyClient(t, addr, nil, false), fmt.Sprintf("http://%d-abc.sandbox.test/stream", port)
	}
	addr, ca := tlsProxy(t, "sandbox.test", t.TempDir(), res)
	return proxyClient(t, addr, ca, true), fmt.Sprintf("https://%d-abc.sandbox.test/stream", port)
}

// TestBidirectionalStream: the request body streams to the sandbox while its
// answers stream back, one message at a time, as connect client and bidi
// streams need. A proxy that buffered the upload would stall.
func TestBidirectionalStream(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", useTLS), func(t *testing.T) {
			port := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_ = http.NewResponseController(w).EnableFullDuplex()
				w.WriteHeader(http.StatusOK)
				w.(http.Flusher).Flush()
				buf := make([]byte, 4)
				for {
					if _, err := io.ReadFull(r.Body, buf); err != nil {
						return
					}
					fmt.Fprintf(w, "ack:%s;", buf)
					w.(http.Flusher).Flush()
				}
			}))
			client, url := streamClient(t, useTLS, port)
			pr, pw := io.Pipe()
			defer pw.Close()
			ctx, cancel := context.WithTimeout(t.Context(), 3*stepTimeout)
			defer cancel()
			// A blocked round trip waits for its body: end it on timeout.
			context.AfterFunc(ctx, func() { pw.CloseWithError(ctx.Err()) })
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, pr)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("no response headers: %v", err)
			}
			defer resp.Body.Close()
			for _, msg := range []string{"msg1", "msg2", "msg3"} {
				go pw.Write([]byte(msg))
				if got, want := readWithin(t, resp.Body, 9), "ack:"+msg+";"; got != want {
					t.Fatalf("got %q, want %q", got, want)
				}
			}
		})
	}
}

// TestWebSocketUpgrade performs a websocket handshake through the proxy on a
// raw connection and echoes bytes both ways over the upgraded connection.
func TestWebSocketUpgrade(t *testing.T) {
	port := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "want upgrade", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Accept: %s\r\n\r\n", wsAccept(r.Header.Get("Sec-WebSocket-Key")))
		brw.Flush()
		io.Copy(conn, brw) // echo until the client closes
	}))
	res := fakeResolver{targets: map[string]Target{"abc": {Address: "127.0.0.1", TrafficAccessToken: "tt"}}}
	addr := serveProxy(t, newTestProxy(t, Config{}, res), false)

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	const key = "dGhlIHNhbXBsZSBub25jZQ=="
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: %d-abc.localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\ne2b-traffic-access-token: tt\r\n\r\n", port, key)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	if got, want := resp.Header.Get("Sec-WebSocket-Accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="; got != want {
		t.Fatalf("Sec-WebSocket-Accept %q, want %q", got, want)
	}
	for _, msg := range []string{"hello", "\x81\x05world", strings.Repeat("x", 100000)} {
		if _, err := io.WriteString(conn, msg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(br, got); err != nil {
			t.Fatalf("echo: %v", err)
		}
		if string(got) != msg {
			t.Fatalf("echo differs for a %d-byte message", len(msg))
		}
	}
}

// wsAccept computes Sec-WebSocket-Accept for a key (RFC 6455 section 4.2.2).
func wsAccept(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}
