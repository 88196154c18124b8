package client

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"ok", Config{APIURL: "http://127.0.0.1:3000/", APIKey: "k", SandboxURL: "https://sb.example"}, ""},
		{"no URL", Config{APIKey: "k"}, "no API URL"},
		{"no key", Config{APIURL: "http://x"}, "no API key"},
		{"bad URL", Config{APIURL: "localhost:3000", APIKey: "k"}, `API URL "localhost:3000": must start with http:// or https://`},
		{"bad sandbox URL", Config{APIURL: "http://x", APIKey: "k", SandboxURL: "x:1"}, `sandbox URL "x:1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.cfg)
			if tt.wantErr == "" {
				if err != nil || c.apiURL != "http://127.0.0.1:3000" {
					t.Fatalf("New: %v, %+v", err, c)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestMetadataQuery(t *testing.T) {
	md := map[string]string{"a b": "c&d", "team": "x=y", "pct": "50%"}
	q := MetadataQuery(md)
	if q != "a%20b=c%26d&pct=50%25&team=x%3Dy" {
		t.Errorf("MetadataQuery = %q", q)
	}
	// The server decodes the query once, splits on & and =, and unescapes
	// each part: the pairs come back as they were.
	v := url.Values{"metadata": {q}}
	parsed, err := url.ParseQuery(v.Encode())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, pair := range strings.Split(parsed.Get("metadata"), "&") {
		k, val, _ := strings.Cut(pair, "=")
		k, _ = url.QueryUnescape(k)
		val, _ = url.QueryUnescape(val)
		got[k] = val
	}
	for k, v := range md {
		if got[k] != v {
			t.Errorf("pair %q decoded as %q, want %q", k, got[k], v)
		}
	}
}

func TestEndCode(t *testing.T) {
	tests := []struct {
		end  End
		want int
	}{
		{End{Exited: true, ExitCode: 0, Status: "exit status 0"}, 0},
		{End{Exited: true, ExitCode: 3, Status: "exit status 3"}, 3},
		{End{ExitCode: -1, Status: "signal: killed"}, 137},
		{End{ExitCode: -1, Status: "signal: terminated"}, 143},
		{End{ExitCode: -1, Status: "signal: segmentation fault (core dumped)"}, 139},
		{End{ExitCode: -1, Status: "unknown wait status 0x7f"}, 1},
	}
	for _, tt := range tests {
		if got := tt.end.Code(); got != tt.want {
			t.Errorf("%+v.Code() = %d, want %d", tt.end, got, tt.want)
		}
	}
}

func TestDecodeError(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		body     string
		msg      string
		notFound bool
		conflict bool
	}{
		{"API 404", 404, `{"code":404,"message":"sandbox \"x\" not found"}`, `sandbox "x" not found`, true, false},
		{"API 409", 409, `{"code":409,"message":"already paused"}`, "already paused", false, true},
		{"proxy 502", 502, `{"sandboxId":"x","message":"The sandbox was not found","code":502}`, "The sandbox was not found", true, false},
		{"other 502", 502, `bad gateway`, "HTTP 502: bad gateway", false, false},
		{"empty", 500, ``, "HTTP 500 Internal Server Error", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := decodeError(&http.Response{StatusCode: tt.status, Body: io.NopCloser(strings.NewReader(tt.body))})
			if err.Error() != tt.msg || errors.Is(err, ErrNotFound) != tt.notFound || errors.Is(err, ErrConflict) != tt.conflict {
				t.Errorf("decodeError = %q (not found %v, conflict %v), want %q (%v, %v)", err, errors.Is(err, ErrNotFound),
					errors.Is(err, ErrConflict), tt.msg, tt.notFound, tt.conflict)
			}
		})
	}
}
