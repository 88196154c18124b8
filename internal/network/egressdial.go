package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"time"
)

// errRefusedTarget reports a destination no sandbox may reach.
var errRefusedTarget = errors.New("destination refused for sandboxes")

// dialGuard connects the egress proxy to destinations, never to one that the
// firewall keeps every sandbox from: the blocked ranges (private, link-local,
// the sandbox subnet...) and any address of the host itself, which a sandbox
// cannot reach either. The check runs on the address actually connected to.
type dialGuard struct {
	blocked []netip.Prefix
}

// refuses reports whether a is a destination no sandbox may reach.
func (g dialGuard) refuses(a netip.Addr) bool {
	a = a.Unmap()
	if !a.Is4() {
		return true // sandboxes have no IPv6
	}
	for _, p := range g.blocked {
		if p.Contains(a) {
			return true
		}
	}
	return hostAddress(a)
}

// hostAddress reports whether a is an address of one of the host's
// interfaces (or cannot be told not to be).
func hostAddress(a netip.Addr) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return true
	}
	for _, ia := range addrs {
		if n, ok := ia.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == a {
				return true
			}
		}
	}
	return false
}

// dial connects to target over TCP, refusing a destination g refuses.
func (g dialGuard) dial(ctx context.Context, target netip.AddrPort) (*net.TCPConn, error) {
	d := net.Dialer{Control: func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil || g.refuses(ap.Addr()) {
			return fmt.Errorf("connect to %s: %w", address, errRefusedTarget)
		}
		return nil
	}}
	c, err := d.DialContext(ctx, "tcp4", target.String())
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// newResolver returns a resolver that asks upstreams (in turn, one per
// attempt) rather than the host's configuration, so that the proxy resolves
// names as the sandboxes' DNS forwarder does.
func newResolver(upstreams []netip.AddrPort, timeout time.Duration) *net.Resolver {
	var next atomic.Uint32
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			up := upstreams[int(next.Add(1)-1)%len(upstreams)]
			d := net.Dialer{Timeout: timeout}
			return d.DialContext(ctx, network, up.String())
		},
	}
}
