package proxy

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"lelantos.dev/lelantos/internal/filesig"
)

// tokenResolver is a SignedFileResolver over a fixed map of sandbox tokens.
type tokenResolver map[string]string

func (tr tokenResolver) ResolveSignedFile(_ context.Context, f SignedFile) (string, error) {
	for id, token := range tr {
		if filesig.Matches(f.Signature, f.Path, f.Operation, f.Username, token, f.Expiration) {
			return id, nil
		}
	}
	return "", fmt.Errorf("no sandbox: %w", ErrSandboxNotFound)
}

// A signed file URL with no host route and no routing headers reaches the daemon
// of the sandbox whose token signed it, and only that one.
func TestSignedFileURLWithoutRoute(t *testing.T) {
	hit := make(chan string, 4)
	serve := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hit <- name
			fmt.Fprint(w, name)
		})
	}
	ipA, ipB := envdBackend(t, serve("a")), envdBackend(t, serve("b"))
	res := fakeResolver{targets: map[string]Target{"sba": {Address: ipA}, "sbb": {Address: ipB}}}
	p := newTestProxy(t, Config{SignedFiles: tokenResolver{"sba": "token-a", "sbb": "token-b"}}, res)
	addr := serveProxy(t, p, false)
	exp := int64(4102444800)
	sign := func(path, op, user, token string, e *int64) string {
		q := url.Values{"path": {path}, "signature": {filesig.Sign(path, op, user, token, e)}}
		if user != "" {
			q.Set("username", user)
		}
		if e != nil {
			q.Set("signature_expiration", fmt.Sprint(*e))
		}
		return "http://" + addr + "/files?" + q.Encode()
	}
	tests := []struct {
		name, method, url string
		wantStatus        int
		wantHit           string
	}{
		{"read signed by a", http.MethodGet, sign("/etc/hostname", filesig.OpRead, "user", "token-a", nil), 200, "a"},
		{"read signed by b, expiring", http.MethodGet, sign("/x", filesig.OpRead, "", "token-b", &exp), 200, "b"},
		{"write signed by b", http.MethodPost, sign("/y", filesig.OpWrite, "root", "token-b", nil), 200, "b"},
		{"read signature used for a write", http.MethodPost, sign("/x", filesig.OpRead, "", "token-a", nil), 400, ""},
		{"signed by no sandbox", http.MethodGet, sign("/x", filesig.OpRead, "", "guess", nil), 400, ""},
		{"not /files", http.MethodGet, "http://" + addr + "/health?signature=v1_x", 400, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, tc.url, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body := readAll(t, resp)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, tc.wantStatus)
			}
			if tc.wantHit == "" {
				select {
				case h := <-hit:
					t.Fatalf("daemon %s was reached", h)
				default:
				}
				return
			}
			if got := <-hit; got != tc.wantHit {
				t.Fatalf("reached daemon %s, want %s", got, tc.wantHit)
			}
		})
	}
}
