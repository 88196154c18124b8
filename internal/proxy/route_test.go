package proxy

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestParseHost(t *testing.T) {
	tests := []struct {
		name   string
		host   string
		domain string
		want   route
		ok     bool
	}{
		{"envd port", "49983-abc123.sandbox.test", "sandbox.test", route{"abc123", 49983}, true},
		{"with listener port", "8080-abc.sandbox.test:8443", "sandbox.test", route{"abc", 8080}, true},
		{"trailing dot", "8080-abc.sandbox.test.", "sandbox.test", route{"abc", 8080}, true},
		{"upper case host", "8080-ABC1.Sandbox.TEST", "sandbox.test", route{"abc1", 8080}, true},
		{"no domain any suffix", "3000-x9.localhost", "", route{"x9", 3000}, true},
		{"no domain multi label suffix", "3000-x9.a.b.c", "", route{"x9", 3000}, true},
		{"port 1", "1-abc.d", "", route{"abc", 1}, true},
		{"port 65535", "65535-abc.d", "", route{"abc", 65535}, true},
		{"other domain", "8080-abc.other.test", "sandbox.test", route{}, false},
		{"subdomain of domain", "8080-abc.x.sandbox.test", "sandbox.test", route{}, false},
		{"domain suffix without dot", "8080-abc.xsandbox.test", "sandbox.test", route{}, false},
		{"bare domain", "sandbox.test", "sandbox.test", route{}, false},
		{"no suffix", "8080-abc", "", route{}, false},
		{"empty suffix", "8080-abc.", "", route{}, false},
		{"port zero", "0-abc.d", "", route{}, false},
		{"port too big", "65536-abc.d", "", route{}, false},
		{"port leading zero", "08080-abc.d", "", route{}, false},
		{"port not decimal", "http-abc.d", "", route{}, false},
		{"port signed", "+80-abc.d", "", route{}, false},
		{"missing port", "-abc.d", "", route{}, false},
		{"missing id", "8080-.d", "", route{}, false},
		{"no dash", "8080abc.d", "", route{}, false},
		{"dash in id", "8080-ab-c.d", "", route{}, false},
		{"underscore in id", "8080-ab_c.d", "", route{}, false},
		{"id too long", "8080-" + strings.Repeat("a", 64) + ".d", "", route{}, false},
		{"ip address", "127.0.0.1:8080", "", route{}, false},
		{"ipv6", "[::1]:8080", "", route{}, false},
		{"empty", "", "", route{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseHost(tt.host, tt.domain)
			if ok != tt.ok || got != tt.want {
				t.Fatalf("parseHost(%q, %q) = %+v, %v; want %+v, %v", tt.host, tt.domain, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestRouteRequest(t *testing.T) {
	tests := []struct {
		name    string
		host    string
		domain  string
		headers map[string]string
		want    route
		errHas  []string // substrings of the error; nil means success
	}{
		{"host wins over headers", "8080-abc.d.test", "d.test",
			map[string]string{"E2b-Sandbox-Id": "zzz", "E2b-Sandbox-Port": "1"}, route{"abc", 8080}, nil},
		{"headers canonical", "proxy.local:3000", "",
			map[string]string{"E2b-Sandbox-Id": "abc", "E2b-Sandbox-Port": "49983"}, route{"abc", 49983}, nil},
		{"headers lower case", "127.0.0.1:3000", "",
			map[string]string{"e2b-sandbox-id": "abc", "e2b-sandbox-port": "8080"}, route{"abc", 8080}, nil},
		{"headers upper case", "127.0.0.1:3000", "",
			map[string]string{"E2B-SANDBOX-ID": "abc", "E2B-SANDBOX-PORT": "8080"}, route{"abc", 8080}, nil},
		{"headers when host is for another domain", "8080-abc.other", "d.test",
			map[string]string{"E2b-Sandbox-Id": "xyz", "E2b-Sandbox-Port": "80"}, route{"xyz", 80}, nil},
		{"nothing", "127.0.0.1:3000", "", nil, route{},
			[]string{"no sandbox route", "E2b-Sandbox-Id and E2b-Sandbox-Port missing"}},
		{"nothing names domain", "proxy", "d.test", nil, route{}, []string{"<port>-<sandboxID>.d.test"}},
		{"port missing", "127.0.0.1:3000", "",
			map[string]string{"E2b-Sandbox-Id": "abc"}, route{}, []string{"header E2b-Sandbox-Port missing"}},
		{"id missing", "127.0.0.1:3000", "",
			map[string]string{"E2b-Sandbox-Port": "80"}, route{}, []string{"header E2b-Sandbox-Id missing"}},
		{"bad port", "127.0.0.1:3000", "",
			map[string]string{"E2b-Sandbox-Id": "abc", "E2b-Sandbox-Port": "99999"}, route{},
			[]string{"invalid header E2b-Sandbox-Port", "99999"}},
		{"upper case id", "127.0.0.1:3000", "",
			map[string]string{"E2b-Sandbox-Id": "ABC", "E2b-Sandbox-Port": "80"}, route{},
			[]string{"invalid header E2b-Sandbox-Id", "lower-case"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/health", nil)
			r.Host = tt.host
			for k, v := range tt.headers {
				r.Header.Add(k, v) // canonicalised, as the server's parser does
			}
			got, err := routeRequest(r, tt.domain)
			if tt.errHas == nil {
				if err != nil || got != tt.want {
					t.Fatalf("routeRequest = %+v, %v; want %+v", got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("routeRequest = %+v, want an error", got)
			}
			for _, s := range tt.errHas {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}

func TestNormalizeDomain(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{"", "", false},
		{"Sandbox.Example.COM", "sandbox.example.com", false},
		{"sandbox.test.", "sandbox.test", false},
		{"localhost:8443", "localhost", false},
		{"a-b.test", "a-b.test", false},
		{"127.0.0.1", "", true},
		{"*.sandbox.test", "", true},
		{"https://sandbox.test", "", true},
		{"-a.test", "", true},
		{"a..test", "", true},
		{"sand box.test", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := normalizeDomain(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("normalizeDomain(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}
