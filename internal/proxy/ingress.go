package proxy

import (
	"crypto/subtle"
	"net/http"
	"strconv"
	"strings"
)

// Messages of the 403 answer to a request without the traffic access token a
// private sandbox needs, as E2B's proxy words them.
const (
	msgTokenMissing = "Sandbox is secured with traffic access token. Token header 'e2b-traffic-access-token' is missing"
	msgTokenInvalid = "Sandbox is secured with traffic access token. Provided token in header 'e2b-traffic-access-token' is invalid"
)

// trafficAllowed checks the traffic access token of a request to a private
// sandbox (allowPublicTraffic false) and answers 403 when it is missing or
// wrong. Every port needs it but the daemon's, EnvdPort, which checks its own
// access token (X-Access-Token) on every route and which the clients reach
// without the traffic token, as E2B's proxy lets them.
func trafficAllowed(w http.ResponseWriter, r *http.Request, rt route, t Target) bool {
	if t.TrafficAccessToken == "" || rt.port == EnvdPort {
		return true
	}
	got := r.Header.Get(HeaderTrafficAccessToken)
	if subtle.ConstantTimeCompare([]byte(got), []byte(t.TrafficAccessToken)) == 1 {
		return true
	}
	msg := msgTokenInvalid
	if got == "" {
		msg = msgTokenMissing
	}
	writeJSON(w, http.StatusForbidden, sandboxNotFound{SandboxID: rt.sandboxID, Message: msg, Code: http.StatusForbidden})
	return false
}

// host is the Host header the sandbox sees: the client's, or the mask with
// "${PORT}" replaced by the port.
func (u *upstream) host(client string) string {
	if u.mask == "" {
		return client
	}
	return strings.ReplaceAll(u.mask, "${PORT}", strconv.Itoa(u.port))
}

// scheme is how the proxy reaches the port.
func (u *upstream) scheme() string {
	if u.https {
		return "https"
	}
	return "http"
}
