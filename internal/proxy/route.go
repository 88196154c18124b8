package proxy

import (
	"fmt"
	"net"
	"net/http"
	"strings"
)

// Header names a client uses to route a request when the host name does not
// carry the route (E2B_SANDBOX_URL mode), and the header carrying a
// sandbox's traffic access token. Go canonicalises incoming header names, so
// any letter case matches.
const (
	HeaderSandboxID          = "E2b-Sandbox-Id"
	HeaderSandboxPort        = "E2b-Sandbox-Port"
	HeaderTrafficAccessToken = "E2b-Traffic-Access-Token"
)

// maxSandboxIDLen bounds a sandbox ID; a DNS label is at most 63 bytes.
const maxSandboxIDLen = 63

// route is where one request goes: a port of a sandbox.
type route struct {
	sandboxID string
	port      int
}

// routeError is a request that names no usable route; its message is sent to
// the client with status 400.
type routeError struct{ msg string }

func (e *routeError) Error() string { return e.msg }

// routeRequest finds the route of r: from its host name when that has the
// form <port>-<sandboxID>.<domain>, else from the routing headers.
func routeRequest(r *http.Request, domain string) (route, error) {
	if rt, ok := parseHost(r.Host, domain); ok {
		return rt, nil
	}
	id, port := r.Header.Get(HeaderSandboxID), r.Header.Get(HeaderSandboxPort)
	var missing []string
	if id == "" {
		missing = append(missing, HeaderSandboxID)
	}
	if port == "" {
		missing = append(missing, HeaderSandboxPort)
	}
	if len(missing) > 0 {
		form := "<port>-<sandboxID>.<domain>"
		if domain != "" {
			form = "<port>-<sandboxID>." + domain
		}
		return route{}, &routeError{msg: fmt.Sprintf(
			"no sandbox route: host %q is not of the form %s and header %s missing",
			r.Host, form, strings.Join(missing, " and "))}
	}
	if !validSandboxID(id) {
		return route{}, &routeError{msg: fmt.Sprintf(
			"invalid header %s %q: want 1-%d lower-case letters and digits",
			HeaderSandboxID, id, maxSandboxIDLen)}
	}
	p, ok := parsePort(port)
	if !ok {
		return route{}, &routeError{msg: fmt.Sprintf(
			"invalid header %s %q: want a port number 1-65535", HeaderSandboxPort, port)}
	}
	return route{sandboxID: id, port: p}, nil
}

// parseHost reads a route from a host name (with or without a :port) of the
// form <port>-<sandboxID>.<domain>. Host names are case-insensitive, so the
// host is lower-cased first. With an empty domain any non-empty suffix is
// accepted; otherwise the suffix must be exactly domain.
func parseHost(host, domain string) (route, bool) {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	label, rest, ok := strings.Cut(host, ".")
	if !ok || rest == "" {
		return route{}, false
	}
	if domain != "" && rest != domain {
		return route{}, false
	}
	portStr, id, ok := strings.Cut(label, "-")
	if !ok || !validSandboxID(id) {
		return route{}, false
	}
	port, ok := parsePort(portStr)
	if !ok {
		return route{}, false
	}
	return route{sandboxID: id, port: port}, true
}

// parsePort parses a decimal TCP port 1-65535 without sign or leading zeros.
func parsePort(s string) (int, bool) {
	if s == "" || len(s) > 5 || s[0] == '0' {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	if n > 65535 {
		return 0, false
	}
	return n, true
}

// validSandboxID reports whether id is 1-63 lower-case letters and digits.
func validSandboxID(id string) bool {
	if id == "" || len(id) > maxSandboxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// normalizeDomain checks and normalises Config.Domain: lower case, no
// trailing dot, any :port dropped. An empty domain stays empty.
func normalizeDomain(d string) (string, error) {
	if d == "" {
		return "", nil
	}
	host := d
	if h, port, err := net.SplitHostPort(d); err == nil {
		if _, ok := parsePort(port); !ok {
			return "", fmt.Errorf("invalid domain %q: bad port %q", d, port)
		}
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "" || len(host) > 253 {
		return "", fmt.Errorf("invalid domain %q: want a DNS name such as sandbox.example.com", d)
	}
	if net.ParseIP(host) != nil {
		return "", fmt.Errorf("invalid domain %q: an IP address cannot carry <port>-<sandboxID> host names", d)
	}
	for _, label := range strings.Split(host, ".") {
		if !validLabel(label) {
			return "", fmt.Errorf("invalid domain %q: label %q is not a DNS label (letters, digits, inner '-')", d, label)
		}
	}
	return host, nil
}

// validLabel reports whether s is a DNS label: 1-63 lower-case letters,
// digits and inner hyphens.
func validLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}
