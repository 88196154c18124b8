package proxy

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestIngressSettings checks what a sandbox's network settings do to
// requests into it: the traffic token of a private sandbox (E2B's 403
// bodies), the masked Host header and ports reached over HTTPS.
func TestIngressSettings(t *testing.T) {
	echoHost := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		fmt.Fprintf(w, "%s %s", scheme, r.Host)
	})
	plain := backend(t, echoHost)
	tlsSrv := httptest.NewTLSServer(echoHost) // a self-signed certificate
	t.Cleanup(tlsSrv.Close)
	secure := portOf(t, tlsSrv.Listener.Addr())
	envdIP := envdBackend(t, echoHost)
	fwd := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("X-Forwarded-Host"))
	}))
	res := fakeResolver{targets: map[string]Target{
		"priv":   {Address: "127.0.0.1", TrafficAccessToken: "s3cret"},
		"privd":  {Address: envdIP, TrafficAccessToken: "s3cret"},
		"mask":   {Address: "127.0.0.1", MaskRequestHost: "app.example.com:${PORT}"},
		"fixed":  {Address: "127.0.0.1", MaskRequestHost: "fixed.example.com"},
		"https":  {Address: "127.0.0.1", HTTPSPorts: []int{secure}},
		"public": {Address: "127.0.0.1"},
		"maskf":  {Address: "127.0.0.1", MaskRequestHost: "m.example.com"},
	}}
	addr := serveProxy(t, newTestProxy(t, Config{Domain: "sandbox.test"}, res), false)
	tok := map[string]string{"e2b-traffic-access-token": "s3cret"}
	tests := []struct {
		name    string
		host    string
		headers map[string]string
		status  int
		body    string
	}{
		{"private: no token", fmt.Sprintf("%d-priv.sandbox.test", plain), nil, 403,
			`{"sandboxId":"priv","message":"` + msgTokenMissing + `","code":403}`},
		{"private: wrong token", fmt.Sprintf("%d-priv.sandbox.test", plain),
			map[string]string{"e2b-traffic-access-token": "s3cre"}, 403,
			`{"sandboxId":"priv","message":"` + msgTokenInvalid + `","code":403}`},
		{"private: token", fmt.Sprintf("%d-priv.sandbox.test", plain), tok, 200,
			fmt.Sprintf("http %d-priv.sandbox.test", plain)},
		{"private: the daemon's port checks its own token", "49983-privd.sandbox.test", nil, 200,
			"http 49983-privd.sandbox.test"},
		{"public: no token needed", fmt.Sprintf("%d-public.sandbox.test", plain), nil, 200,
			fmt.Sprintf("http %d-public.sandbox.test", plain)},
		{"masked host with the port", fmt.Sprintf("%d-mask.sandbox.test", plain), nil, 200,
			fmt.Sprintf("http app.example.com:%d", plain)},
		{"masked host without a port", fmt.Sprintf("%d-fixed.sandbox.test", plain), nil, 200,
			"http fixed.example.com"},
		{"https port", fmt.Sprintf("%d-https.sandbox.test", secure), nil, 200,
			fmt.Sprintf("https %d-https.sandbox.test", secure)},
		{"other ports stay plain", fmt.Sprintf("%d-https.sandbox.test", plain), nil, 200,
			fmt.Sprintf("http %d-https.sandbox.test", plain)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, status, _ := rawRequest(t, addr, "", tt.host, tt.headers)
			if status != tt.status || body != tt.body {
				t.Fatalf("got %d %s\nwant %d %s", status, body, tt.status, tt.body)
			}
		})
	}
	// The client's own Host still reaches the sandbox in X-Forwarded-Host.
	if body, _, _ := rawRequest(t, addr, "", fmt.Sprintf("%d-maskf.sandbox.test", fwd), nil); body != fmt.Sprintf("%d-maskf.sandbox.test", fwd) {
		t.Errorf("X-Forwarded-Host %q, want the client's host", body)
	}
}
