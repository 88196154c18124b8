package proxy

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		r    Resolver
	}{
		{"nil resolver", Config{}, nil},
		{"ip domain", Config{Domain: "10.0.0.1"}, fakeResolver{}},
		{"wildcard domain", Config{Domain: "*.sandbox.test"}, fakeResolver{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if p, err := New(tt.cfg, tt.r); err == nil {
				t.Fatalf("New = %v, want an error", p)
			}
		})
	}
}

// TestAnswers checks status and exact body of every answer the proxy gives
// itself, and that allowed requests reach the sandbox.
func TestAnswers(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") })
	port := backend(t, ok)
	envdIP := envdBackend(t, ok)
	closed := closedPort(t)
	res := fakeResolver{targets: map[string]Target{
		"abc":    {Address: "127.0.0.1"},
		"tok":    {Address: "127.0.0.1", TrafficAccessToken: "s3cret"},
		"envd":   {Address: envdIP, TrafficAccessToken: "s3cret"},
		"noaddr": {},
	}}
	addr := serveProxy(t, newTestProxy(t, Config{Domain: "sandbox.test"}, res), false)
	busyAddr := serveProxy(t, newTestProxy(t, Config{}, fakeResolver{err: errors.New("db locked")}), false)

	tests := []struct {
		name     string
		addr     string
		host     string
		method   string
		headers  map[string]string
		status   int
		body     string // exact, when not empty
		bodyHas  string // substring, when not empty
		jsonCode int    // "code" in the body; 0: not JSON
	}{
		{name: "by host", host: fmt.Sprintf("%d-abc.sandbox.test", port), status: 200, body: "hello"},
		{name: "by headers", host: "proxy.local",
			headers: map[string]string{"e2b-sandbox-id": "abc", "e2b-sandbox-port": fmt.Sprint(port)},
			status:  200, body: "hello"},
		{name: "unknown sandbox by host", host: fmt.Sprintf("%d-nosuch.sandbox.test", port), status: 502,
			body: `{"sandboxId":"nosuch","message":"The sandbox was not found","code":502}`, jsonCode: 502},
		{name: "unknown sandbox by headers", host: "proxy.local",
			headers: map[string]string{"E2b-Sandbox-Id": "gone1", "E2b-Sandbox-Port": "49983"}, status: 502,
			body: `{"sandboxId":"gone1","message":"The sandbox was not found","code":502}`, jsonCode: 502},
		{name: "closed port", host: fmt.Sprintf("%d-abc.sandbox.test", closed), status: 502,
			body:     fmt.Sprintf(`{"sandboxId":"abc","message":"The sandbox is running but port is not open","port":%d,"code":502}`, closed),
			jsonCode: 502},
		{name: "no route", host: "proxy.local", status: 400, jsonCode: 400,
			bodyHas: "E2b-Sandbox-Id and E2b-Sandbox-Port missing"},
		{name: "bad port header", host: "proxy.local",
			headers: map[string]string{"E2b-Sandbox-Id": "abc", "E2b-Sandbox-Port": "x"},
			status:  400, jsonCode: 400, bodyHas: "E2b-Sandbox-Port"},
		{name: "resolver failure", addr: busyAddr, host: "80-abc.d", status: 503, jsonCode: 503},
		{name: "resolver without address", host: "80-noaddr.sandbox.test", status: 503, jsonCode: 503},
		{name: "connect method", method: http.MethodConnect, host: "80-abc.sandbox.test", status: 405, jsonCode: 405},
		{name: "token missing", host: fmt.Sprintf("%d-tok.sandbox.test", port), status: 403, jsonCode: 403,
			bodyHas: "e2b-traffic-access-token"},
		{name: "token wrong", host: fmt.Sprintf("%d-tok.sandbox.test", port),
			headers: map[string]string{"e2b-traffic-access-token": "nope"}, status: 403, jsonCode: 403},
		{name: "token accepted", host: fmt.Sprintf("%d-tok.sandbox.test", port),
			headers: map[string]string{"e2b-traffic-access-token": "s3cret"}, status: 200, body: "hello"},
		{name: "envd port needs no token", host: "49983-envd.sandbox.test", status: 200, body: "hello"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := addr
			if tt.addr != "" {
				target = tt.addr
			}
			body, status, ctype := rawRequest(t, target, tt.method, tt.host, tt.headers)
			if status != tt.status {
				t.Fatalf("status %d, want %d; body %s", status, tt.status, body)
			}
			if tt.body != "" && body != tt.body {
				t.Errorf("body %s\nwant %s", body, tt.body)
			}
			if tt.bodyHas != "" && !strings.Contains(body, tt.bodyHas) {
				t.Errorf("body %s does not contain %q", body, tt.bodyHas)
			}
			if tt.jsonCode != 0 {
				var v struct {
					Code    int    `json:"code"`
					Message string `json:"message"`
				}
				if err := json.Unmarshal([]byte(body), &v); err != nil || v.Code != tt.jsonCode || v.Message == "" {
					t.Errorf("body %s: want JSON with code %d and a message (err %v)", body, tt.jsonCode, err)
				}
				if ctype != "application/json" {
					t.Errorf("Content-Type %q, want application/json", ctype)
				}
			}
		})
	}
}

// rawRequest sends one HTTP/1.1 request with header names exactly as given
// (clients send them in lower case) and returns body, status, content type.
func rawRequest(t *testing.T, addr, method, host string, headers map[string]string) (string, int, string) {
	t.Helper()
	if method == "" {
		method = http.MethodGet
	}
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	target := "/health"
	if method == http.MethodConnect {
		target = host
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", method, target, host)
	for k, v := range headers {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	return readAll(t, resp), resp.StatusCode, resp.Header.Get("Content-Type")
}

// TestForwarding checks what the sandbox receives: method, path, query,
// body, the client's Host, X-Forwarded-*, the daemon's access token, and
// no proxy routing headers.
func TestForwarding(t *testing.T) {
	type seen struct {
		Method, Path, RawQuery, Host, Body string
		Header                             http.Header
	}
	var conns atomic.Int32
	srv := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		json.NewEncoder(w).Encode(seen{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Host, string(b), r.Header})
	})
	port := backend(t, countConns(srv, &conns))
	res := fakeResolver{targets: map[string]Target{"abc": {Address: "127.0.0.1", TrafficAccessToken: "tt"}}}
	addr := serveProxy(t, newTestProxy(t, Config{}, res), false)
	client := proxyClient(t, addr, nil, false)

	tests := []struct {
		name, host string
		headers    map[string]string
	}{
		{"by host", fmt.Sprintf("%d-abc.localhost:3000", port), nil},
		{"by headers", "sandboxes.local:3000",
			map[string]string{"E2b-Sandbox-Id": "abc", "E2b-Sandbox-Port": fmt.Sprint(port)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i := range 5 { // several requests: one upstream connection
				req, _ := http.NewRequest(http.MethodPost,
					"http://"+tt.host+"/files/a%2Fb?path=%2Fhome%2Fuser&x=1", strings.NewReader("payload"))
				req.Header.Set("X-Access-Token", "envd-token")
				req.Header.Set("E2b-Traffic-Access-Token", "tt")
				req.Header.Set("X-Forwarded-For", "6.6.6.6") // spoofed, must not pass
				for k, v := range tt.headers {
					req.Header.Set(k, v)
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				var got seen
				if err := json.Unmarshal([]byte(readAll(t, resp)), &got); err != nil {
					t.Fatal(err)
				}
				checks := []struct{ what, got, want string }{
					{"method", got.Method, "POST"},
					{"path", got.Path, "/files/a%2Fb"},
					{"query", got.RawQuery, "path=%2Fhome%2Fuser&x=1"},
					{"body", got.Body, "payload"},
					{"host", got.Host, tt.host},
					{"X-Access-Token", got.Header.Get("X-Access-Token"), "envd-token"},
					{"X-Forwarded-For", got.Header.Get("X-Forwarded-For"), "127.0.0.1"},
					{"X-Forwarded-Host", got.Header.Get("X-Forwarded-Host"), tt.host},
					{"X-Forwarded-Proto", got.Header.Get("X-Forwarded-Proto"), "http"},
					{"E2b-Sandbox-Id", got.Header.Get("E2b-Sandbox-Id"), ""},
					{"E2b-Sandbox-Port", got.Header.Get("E2b-Sandbox-Port"), ""},
					{"E2b-Traffic-Access-Token", got.Header.Get("E2b-Traffic-Access-Token"), ""},
					{"Accept-Encoding", got.Header.Get("Accept-Encoding"), ""},
				}
				for _, c := range checks {
					if c.got != c.want {
						t.Errorf("request %d: %s = %q, want %q", i, c.what, c.got, c.want)
					}
				}
			}
		})
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("backend saw %d connections for 10 sequential requests, want 1 (reuse)", n)
	}
}

// countConns counts the new connections of the server it is wrapped in
// through the request's local connection identity.
func countConns(h http.Handler, n *atomic.Int32) http.Handler {
	var last atomic.Value
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if prev, _ := last.Swap(r.RemoteAddr).(string); prev != r.RemoteAddr {
			n.Add(1)
		}
		h.ServeHTTP(w, r)
	})
}
