// Package proxy is the sandbox traffic proxy: it routes a client's HTTP
// request, stream or websocket to a port of a sandbox.
//
// A request names its sandbox and port either in its host name,
// <port>-<sandboxID>.<domain> (what the E2B clients use by default), or, when
// the host is not of that form, in the headers E2b-Sandbox-Id and
// E2b-Sandbox-Port (what the clients send when E2B_SANDBOX_URL is set). The
// proxy asks a Resolver where the sandbox's ports listen and forwards over
// HTTP/1.1 without buffering bodies; a sandbox the Resolver does not find
// running may first be resumed by a Resumer (one resume per sandbox at a time).
// With a domain and a TLS directory it also serves TLS (HTTP/2 and HTTP/1.1)
// for *.<domain> with a certificate signed by a locally generated CA.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"slices"
	"strconv"
	"syscall"
	"time"
)

// EnvdPort is the port of the in-sandbox daemon. Requests to it need no
// traffic access token (the daemon checks its own access token).
const EnvdPort = 49983

// ErrSandboxNotFound is returned, possibly wrapped, by a Resolver for an
// unknown, killed, timed-out or paused sandbox. The proxy answers it with
// 502 and {"sandboxId", "message": "The sandbox was not found", "code": 502}.
var ErrSandboxNotFound = errors.New("sandbox not found")

// UnreachableError is returned, possibly wrapped, by a Resolver for a
// sandbox that exists but cannot be reached now, e.g. on a node that stopped
// reporting; the proxy answers 503 with its message.
type UnreachableError struct{ Message string }

func (e *UnreachableError) Error() string { return e.Message }

// Resolver finds where a sandbox's ports are reached.
type Resolver interface {
	// ResolveSandbox returns the target of a running sandbox, or an error
	// wrapping ErrSandboxNotFound.
	ResolveSandbox(ctx context.Context, sandboxID string) (Target, error)
}

// Target is where a sandbox's ports are reached.
type Target struct {
	// Address is the IP address or host name on which the sandbox's ports
	// listen, without a port.
	Address string
	// TrafficAccessToken, when non-empty, must be sent in header
	// e2b-traffic-access-token by requests to any port but EnvdPort;
	// requests without it get 403.
	TrafficAccessToken string
	// MaskRequestHost, when non-empty, is the Host header requests reach
	// the sandbox with, "${PORT}" replaced by the port (see maskedHost).
	MaskRequestHost string
	// HTTPSPorts are the sandbox's ports that serve HTTPS: the proxy reaches
	// them over TLS without checking their certificates.
	HTTPSPorts []int
	// Tunnel, when set, reaches the sandbox through the node that holds it,
	// whose sandbox addresses are private to that machine: Address is then
	// the node's own view and is not dialled.
	Tunnel Tunnel
}

// Tunnel dials a port of a sandbox on another machine, through its node.
type Tunnel interface {
	// DialSandbox returns a connection to port of sandbox sandboxID.
	DialSandbox(ctx context.Context, sandboxID string, port int) (net.Conn, error)
}

// Config configures a Proxy.
type Config struct {
	// Domain is the sandbox domain D: hosts <port>-<id>.D route to sandboxes.
	// It may carry a :port, which is ignored for routing and certificates.
	// When empty, any host of the form <port>-<id>.<anything> routes, and
	// so do the routing headers.
	Domain string
	// TLSDir holds the generated CA and the certificate for *.D and D
	// (ca.pem, ca-key.pem, cert.pem, key.pem). When Domain and TLSDir are both
	// set, New creates or renews them and ServeTLS can be used.
	TLSDir string
	// Logger receives diagnostics; nil means slog.Default().
	Logger *slog.Logger
	// SignedFiles, when set, routes signed file URLs that carry no sandbox in
	// their host or headers to the sandbox that signed them.
	SignedFiles SignedFileResolver
	// Resumer, when set, is asked to resume a sandbox the resolver does not
	// find running before the request is answered with 502: a paused sandbox
	// that allows it is resumed and the request served.
	Resumer Resumer
	// ResumeTimeout bounds a resume and a request's wait for it;
	// DefaultResumeTimeout when 0.
	ResumeTimeout time.Duration
	// Observer is told the bytes moved to and from sandboxes and the
	// requests the proxy refused; nil: nobody.
	Observer Observer
}

// Proxy routes requests to sandbox ports. It is safe for concurrent use.
type Proxy struct {
	domain    string
	resolver  Resolver
	signed    SignedFileResolver // nil: signed URLs need a route like any request
	log       *slog.Logger
	transport *http.Transport
	conns     *connSet // the transport's connections, by sandbox
	rp        *httputil.ReverseProxy
	certs     *certStore // nil without TLS
	// resumer, when not nil, resumes paused sandboxes traffic reaches.
	resumer       Resumer
	resumeTimeout time.Duration
	resuming      resumes
	obs           Observer // nil: nobody
}

// upstream is the per-request routing decision handed from ServeHTTP to
// the ReverseProxy callbacks through the request context.
type upstream struct {
	route
	hostport string
	mask     string // Target.MaskRequestHost
	https    bool   // the port serves HTTPS
	tunnel   Tunnel // Target.Tunnel
}

type upstreamKey struct{}

// New returns a Proxy that routes with r. When cfg.Domain and cfg.TLSDir are
// both set it loads the TLS material from cfg.TLSDir, generating it when it
// is missing, expired or for another domain.
func New(cfg Config, r Resolver) (*Proxy, error) {
	if r == nil {
		return nil, errors.New("new proxy: nil resolver")
	}
	domain, err := normalizeDomain(cfg.Domain)
	if err != nil {
		return nil, fmt.Errorf("new proxy: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	p := &Proxy{domain: domain, resolver: r, signed: cfg.SignedFiles, log: log, transport: newTransport(), conns: newConnSet()}
	p.obs, p.conns.obs = cfg.Observer, cfg.Observer
	p.transport.DialContext = p.conns.dialer(tunnelled(p.transport.DialContext))
	p.resumer, p.resumeTimeout = cfg.Resumer, cfg.ResumeTimeout
	if p.resumeTimeout <= 0 {
		p.resumeTimeout = DefaultResumeTimeout
	}
	if domain != "" && cfg.TLSDir != "" {
		p.certs, err = newCertStore(cfg.TLSDir, domain)
		if err != nil {
			return nil, fmt.Errorf("new proxy: %w", err)
		}
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:       p.rewrite,
		Transport:     p.transport,
		FlushInterval: -1,
		BufferPool:    newBufferPool(copyBufferSize),
		ErrorHandler:  p.upstreamError,
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return p, nil
}

// Handler returns the proxy's HTTP handler (the Proxy itself).
func (p *Proxy) Handler() http.Handler { return p }

// Domain returns the normalised sandbox domain, or "" when none is set.
func (p *Proxy) Domain() string { return p.domain }

// ServeHTTP routes one request to its sandbox port.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodConnect {
		p.refused(route{}, ReasonMethod)
		writeError(w, http.StatusMethodNotAllowed, "CONNECT is not supported by the sandbox proxy")
		return
	}
	rt, err := routeRequest(r, p.domain)
	if err != nil {
		signed, ok := p.routeSigned(r)
		if !ok {
			p.refused(route{}, ReasonNoRoute)
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		rt = signed
	}
	target, err := p.resolver.ResolveSandbox(r.Context(), rt.sandboxID)
	if errors.Is(err, ErrSandboxNotFound) && p.resumer != nil {
		target, err = p.resume(r, rt)
		if writeResumeError(w, rt.sandboxID, err) {
			p.refused(rt, resumeReason(err))
			return
		}
	}
	switch {
	case errors.Is(err, ErrSandboxNotFound):
		p.refused(rt, ReasonNotFound)
		writeJSON(w, http.StatusBadGateway, sandboxNotFound{
			SandboxID: rt.sandboxID, Message: msgSandboxNotFound, Code: http.StatusBadGateway})
		return
	case errors.As(err, new(*UnreachableError)):
		p.refused(rt, ReasonNodeLost)
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	case err != nil:
		if r.Context().Err() == nil {
			p.log.Warn("proxy: resolve sandbox", "sandbox", rt.sandboxID, "err", err)
		}
		p.refused(rt, ReasonBusy)
		writeError(w, http.StatusServiceUnavailable,
			fmt.Sprintf("sandbox %s: the service is busy, try again", rt.sandboxID))
		return
	case target.Address == "":
		p.log.Error("proxy: resolver returned an empty address", "sandbox", rt.sandboxID)
		p.refused(rt, ReasonNoAddress)
		writeError(w, http.StatusServiceUnavailable,
			fmt.Sprintf("sandbox %s: no address known", rt.sandboxID))
		return
	}
	if !trafficAllowed(w, r, rt, target) {
		p.refused(rt, ReasonToken)
		return
	}
	if r.ProtoMajor == 1 {
		// Let streams read the request while the response is being written
		// (client streams, bidirectional connect RPCs). Not all writers
		// support it (e.g. test recorders); then the default applies.
		_ = http.NewResponseController(w).EnableFullDuplex()
	}
	up := &upstream{route: rt, hostport: net.JoinHostPort(target.Address, strconv.Itoa(rt.port)),
		mask: target.MaskRequestHost, https: slices.Contains(target.HTTPSPorts, rt.port), tunnel: target.Tunnel}
	if up.tunnel != nil {
		// Addresses are private to each node and may repeat across nodes:
		// pool a tunnelled sandbox's connections under its own ID.
		up.hostport = net.JoinHostPort(rt.sandboxID+tunnelHostSuffix, strconv.Itoa(rt.port))
	}
	p.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), upstreamKey{}, up)))
}

// rewrite points the outbound request at the sandbox port, keeps the
// client's Host (apps in the sandbox see the name the client used) unless
// the sandbox masks it (Target.MaskRequestHost), sets
// X-Forwarded-For/-Host/-Proto and drops the proxy's own headers. Everything
// else, X-Access-Token included, passes untouched.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	up := pr.In.Context().Value(upstreamKey{}).(*upstream)
	pr.Out.URL.Scheme = up.scheme()
	pr.Out.URL.Host = up.hostport
	pr.Out.Host = up.host(pr.In.Host)
	pr.SetXForwarded()
	h := pr.Out.Header
	h.Del(HeaderSandboxID)
	h.Del(HeaderSandboxPort)
	h.Del(HeaderTrafficAccessToken)
}

// upstreamError answers a failed round trip to the sandbox port.
func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	up, ok := r.Context().Value(upstreamKey{}).(*upstream)
	if r.Context().Err() != nil {
		// The client went away; nobody reads an answer.
		if ok {
			p.refused(up.route, ReasonClientGone)
		}
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	if !ok {
		writeError(w, http.StatusBadGateway, "bad gateway")
		return
	}
	body := portError{SandboxID: up.sandboxID, Port: up.port, Code: http.StatusBadGateway}
	var opErr *net.OpError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		body.Message = msgPortNotOpen
		p.refused(up.route, ReasonPortClosed)
	case errors.As(err, &opErr) && opErr.Op == "dial":
		body.Message = msgUnreachable
		p.refused(up.route, ReasonUnreachable)
		p.log.Warn("proxy: dial sandbox", "sandbox", up.sandboxID, "port", up.port, "err", err)
	default:
		body.Message = msgNoAnswer
		p.refused(up.route, ReasonNoAnswer)
		p.log.Debug("proxy: forward", "sandbox", up.sandboxID, "port", up.port, "err", err)
	}
	writeJSON(w, http.StatusBadGateway, body)
}

// CloseIdleConnections drops the idle connections to sandboxes. Call it after a
// sandbox is paused or resumed: its connections do not survive a checkpoint.
func (p *Proxy) CloseIdleConnections() { p.transport.CloseIdleConnections() }

// DropSandbox closes every connection to sandbox id, those carrying a request
// included: call it when the sandbox is killed. Its streams then end at once
// (the client sees the connection cut, asks again and gets the 502 of a sandbox
// that is gone) instead of waiting on a network that has disappeared.
func (p *Proxy) DropSandbox(id string) {
	if n := p.conns.closeSandbox(id); n > 0 {
		p.log.Debug("proxy: closed the connections to a killed sandbox", "sandbox", id, "connections", n)
	}
}
