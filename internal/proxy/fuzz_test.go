package proxy

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzRouteRequest feeds arbitrary hosts, routing headers and signed-URL queries
// to the proxy's routing: it must never panic, never route to an invalid sandbox
// id or port, and answer a request it cannot route with 400 or 502, never 5xx of
// its own.
func FuzzRouteRequest(f *testing.F) {
	seeds := []struct{ host, id, port, query string }{
		{"49983-abc123.localhost:3001", "", "", ""},
		{"8080-abc.sb.example.com", "", "", ""},
		{"127.0.0.1:3001", "abc", "49983", ""},
		{"127.0.0.1:3001", "", "", "path=/x&signature=v1_abc&signature_expiration=12"},
		{"0-a.b", "ABC", "0", "signature=&signature_expiration=x"},
		{"65536-a.b", "a-b", "-1", "path=%zz"},
		{"[::1]:80", "", "99999999999999999999", ""},
		{"", "\x00", " 1", ""},
	}
	for _, s := range seeds {
		f.Add(s.host, s.id, s.port, s.query)
	}
	res := fakeResolver{targets: map[string]Target{}}
	for _, domain := range []string{"", "sb.example.com"} {
		p, err := New(Config{Domain: domain, Logger: quietLogger(f), SignedFiles: tokenResolver{"abc": "t"}}, res)
		if err != nil {
			f.Fatal(err)
		}
		f.Fuzz(func(t *testing.T, host, id, port, query string) {
			if rt, err := routeRequest(&http.Request{Host: host, Header: http.Header{HeaderSandboxID: {id}, HeaderSandboxPort: {port}}}, p.domain); err == nil {
				if !validSandboxID(rt.sandboxID) || rt.port < 1 || rt.port > 65535 {
					t.Fatalf("routed to sandbox %q port %d", rt.sandboxID, rt.port)
				}
			}
			req := httptest.NewRequest(http.MethodGet, "http://x/files", nil)
			req.Host = host
			req.URL.RawQuery = query
			if id != "" {
				req.Header.Set(HeaderSandboxID, id)
			}
			if port != "" {
				req.Header.Set(HeaderSandboxPort, port)
			}
			w := httptest.NewRecorder()
			p.ServeHTTP(w, req)
			if c := w.Code; c != http.StatusBadRequest && c != http.StatusBadGateway {
				t.Fatalf("host %q id %q port %q query %q: status %d, want 400 or 502", host, id, port, query, c)
			}
		})
		break // f.Fuzz may be called once; the second domain is covered by the unit tests
	}
}
