package network

import (
	"net/netip"
	"sync"
	"sync/atomic"

	"golang.org/x/time/rate"
)

// Per-sandbox DNS limits applied by StartDNS to zero DNSOptions fields.
const (
	// DefaultDNSRate is the queries per second each sandbox may have relayed.
	DefaultDNSRate = 100
	// DefaultDNSBurst is how many queries a sandbox may send at once above the rate.
	DefaultDNSBurst = 200
	// DefaultDNSSandboxInFlight bounds the queries of one sandbox relayed at once.
	DefaultDNSSandboxInFlight = 32
	// DefaultDNSSandboxTCPConns bounds the TCP connections of one sandbox.
	DefaultDNSSandboxTCPConns = 8
	// dnsKernelFactor: the firewall drops a sandbox's packets to the forwarder
	// beyond this many times its rate and burst, before they reach the socket, so
	// that a packet flood cannot fill the socket's queue that every sandbox
	// shares. Between the rate and that, queries are refused.
	dnsKernelFactor = 4
	// The largest per-sandbox rate and burst: the firewall's hashlimit takes at
	// most a million packets a second.
	maxDNSRate  = 250000
	maxDNSBurst = 100000
)

// DNSStats counts what the forwarder did with the queries it read.
type DNSStats struct {
	// Relayed queries were sent upstream (and the answer, or SERVFAIL, back).
	Relayed uint64
	// Refused queries were answered REFUSED: their sandbox was over its rate or
	// had too many queries in flight.
	Refused uint64
	// Dropped queries got no answer: their sandbox was also over its rate of
	// refusals, or the forwarder was at MaxInFlight.
	Dropped uint64
	// Denied queries were answered REFUSED: their sandbox's egress rules do
	// not let it look the name up.
	Denied uint64
}

// dnsCounters are the atomic counters behind DNSStats.
type dnsCounters struct{ relayed, refused, dropped, denied atomic.Uint64 }

func (c *dnsCounters) stats() DNSStats {
	return DNSStats{Relayed: c.relayed.Load(), Refused: c.refused.Load(), Dropped: c.dropped.Load(),
		Denied: c.denied.Load()}
}

// verdict is what to do with one query.
type verdict int

const (
	relayIt verdict = iota
	refuseIt
	dropIt
)

// sourceLimits gives each sandbox address its own share of the forwarder: a token
// bucket of queries, one of refusals, and caps on queries in flight and TCP
// connections. Sources are sandbox addresses (others never get this far), so the
// table is bounded by the subnet.
type sourceLimits struct {
	rate              rate.Limit
	burst             int
	inFlight, maxConn int

	mu sync.Mutex
	by map[netip.Addr]*source
}

type source struct {
	queries, refusals *rate.Limiter
	busy, conns       int
}

func newSourceLimits(o DNSOptions) *sourceLimits {
	return &sourceLimits{
		rate: rate.Limit(o.SandboxRate), burst: o.SandboxBurst,
		inFlight: o.SandboxInFlight, maxConn: o.SandboxTCPConns,
		by: map[netip.Addr]*source{},
	}
}

// get returns src's state. Call with l.mu held.
func (l *sourceLimits) get(src netip.Addr) *source {
	s := l.by[src]
	if s == nil {
		s = &source{queries: rate.NewLimiter(l.rate, l.burst), refusals: rate.NewLimiter(l.rate, l.burst)}
		l.by[src] = s
	}
	return s
}

// admit decides on one query from src; a relayed one must be ended with done.
func (l *sourceLimits) admit(src netip.Addr) verdict {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.get(src)
	if s.busy < l.inFlight && s.queries.Allow() {
		s.busy++
		return relayIt
	}
	if s.refusals.Allow() {
		return refuseIt
	}
	return dropIt
}

// done ends a query admitted for relaying.
func (l *sourceLimits) done(src netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.get(src).busy--
}

// openConn counts a new TCP connection from src, unless src has all it may have.
func (l *sourceLimits) openConn(src netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.get(src)
	if s.conns >= l.maxConn {
		return false
	}
	s.conns++
	return true
}

// closeConn ends a connection counted by openConn.
func (l *sourceLimits) closeConn(src netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.get(src).conns--
}
