package agent

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestTunnelRefusesBadRequests: what is not a CONNECT goes on to the RPC
// handler; a CONNECT over HTTP/2 or to an authority that is not
// SANDBOX_ID:PORT is refused before the engine is asked.
func TestTunnelRefusesBadRequests(t *testing.T) {
	s := &Server{} // no engine: none of these may reach it
	next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	h := s.Tunnel(next)
	for _, tt := range []struct {
		name   string
		method string
		host   string
		major  int
		want   int
	}{
		{"an RPC", http.MethodPost, "agent", 1, http.StatusTeapot},
		{"no port", http.MethodConnect, "sandbox1", 1, http.StatusBadRequest},
		{"port 0", http.MethodConnect, "sandbox1:0", 1, http.StatusBadRequest},
		{"port out of range", http.MethodConnect, "sandbox1:70000", 1, http.StatusBadRequest},
		{"a port that is no number", http.MethodConnect, "sandbox1:http", 1, http.StatusBadRequest},
		{"no ID", http.MethodConnect, ":49983", 1, http.StatusBadRequest},
		{"HTTP/2", http.MethodConnect, "sandbox1:49983", 2, http.StatusHTTPVersionNotSupported},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "/", nil)
			r.Host, r.ProtoMajor = tt.host, tt.major
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.want {
				t.Fatalf("status %d, want %d (%s)", w.Code, tt.want, w.Body)
			}
		})
	}
}
