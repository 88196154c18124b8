package proxy

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Route kinds, as the proxy reports traffic and refusals: to the daemon's
// port (the clients' commands and files, signed file URLs included), to any
// other port of a sandbox (what its programs serve), or no route at all (a
// request that names no sandbox).
const (
	RouteEnvd = "envd"
	RoutePort = "port"
	RouteNone = "none"
)

// Reasons the proxy answers a request itself with an error.
const (
	ReasonMethod        = "method"        // 405: CONNECT
	ReasonNoRoute       = "no_route"      // 400: no sandbox in host or headers
	ReasonNotFound      = "not_found"     // 502: unknown, killed or paused sandbox
	ReasonBusy          = "busy"          // 503: the control plane could not say
	ReasonNoAddress     = "no_address"    // 503: the sandbox has no address
	ReasonNodeLost      = "node_lost"     // 503: the sandbox's node cannot be reached
	ReasonToken         = "token"         // 403: traffic access token missing or wrong
	ReasonResumeDenied  = "resume_denied" // 403: the credentials cannot resume it
	ReasonTransitioning = "transitioning" // 409: still changing state
	ReasonQuota         = "quota"         // 429: its team has no room to resume it
	ReasonPortClosed    = "port_closed"   // 502: nothing listens on the port
	ReasonUnreachable   = "unreachable"   // 502: the sandbox's address does not answer
	ReasonNoAnswer      = "no_answer"     // 502: the port broke off or did not answer
	ReasonClientGone    = "client_gone"   // the client left before the answer
)

// Observer is told what the proxy moves and what it refuses: n bytes sent
// to (toSandbox) or received from a sandbox on a connection of route kind
// kind, and each request the proxy answered with an error of its own, by
// kind and reason (a Reason constant). It is called from many goroutines at
// once, for every read and write, and must not block.
type Observer interface {
	Transferred(kind string, toSandbox bool, n int)
	Refused(kind, reason string)
}

// routeKind is the kind of rt.
func routeKind(rt route) string {
	switch {
	case rt.sandboxID == "":
		return RouteNone
	case rt.port == EnvdPort:
		return RouteEnvd
	}
	return RoutePort
}

// refused reports a request to rt the proxy answered itself.
func (p *Proxy) refused(rt route, reason string) {
	if p.obs != nil {
		p.obs.Refused(routeKind(rt), reason)
	}
}

// resumeReason is the Reason of an error writeResumeError answered.
func resumeReason(err error) string {
	switch {
	case errors.Is(err, ErrResumeDenied):
		return ReasonResumeDenied
	case errors.Is(err, ErrTooManySandboxes):
		return ReasonQuota
	}
	return ReasonTransitioning
}

// Read implements net.Conn, counting what comes from the sandbox.
func (c *sandboxConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && c.obs != nil {
		c.obs.Transferred(c.kind, false, n)
	}
	return n, err
}

// Write implements net.Conn, counting what goes to the sandbox.
func (c *sandboxConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if n > 0 && c.obs != nil {
		c.obs.Transferred(c.kind, true, n)
	}
	return n, err
}

// Metrics is an Observer that keeps Prometheus metrics:
// lelantos_proxy_bytes_total{route, direction} (direction to_sandbox or
// from_sandbox; bytes on the connections to sandboxes, headers and TLS
// included) and lelantos_proxy_errors_total{route, reason}.
type Metrics struct {
	bytes  *prometheus.CounterVec
	errors *prometheus.CounterVec
	// counters are bytes' children by kind and direction, looked up once.
	counters map[string][2]prometheus.Counter
}

var _ Observer = (*Metrics)(nil)

// NewMetrics registers the proxy's metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lelantos_proxy_bytes_total",
			Help: "Bytes the sandbox proxy moved on its connections to sandboxes, by route kind (envd: the daemon's port; port: any other) and direction (to_sandbox, from_sandbox).",
		}, []string{"route", "direction"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lelantos_proxy_errors_total",
			Help: "Requests the sandbox proxy answered with an error of its own, by route kind (envd, port, none) and reason.",
		}, []string{"route", "reason"}),
		counters: map[string][2]prometheus.Counter{},
	}
	for _, c := range []prometheus.Collector{m.bytes, m.errors} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("proxy metrics: %w", err)
		}
	}
	for _, kind := range []string{RouteEnvd, RoutePort} {
		m.counters[kind] = [2]prometheus.Counter{m.bytes.WithLabelValues(kind, "from_sandbox"), m.bytes.WithLabelValues(kind, "to_sandbox")}
	}
	return m, nil
}

// Transferred implements Observer.
func (m *Metrics) Transferred(kind string, toSandbox bool, n int) {
	c, ok := m.counters[kind]
	if !ok {
		return
	}
	i := 0
	if toSandbox {
		i = 1
	}
	c[i].Add(float64(n))
}

// Refused implements Observer.
func (m *Metrics) Refused(kind, reason string) { m.errors.WithLabelValues(kind, reason).Inc() }
