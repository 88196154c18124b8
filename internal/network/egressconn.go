package network

import (
	"context"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// proxied is one connection the egress proxy carries.
type proxied struct {
	src    netip.Addr // the sandbox's address
	client *net.TCPConn

	mu       sync.Mutex // guards the fields below
	decided  bool
	host     string         // the name it asked for, "" when none
	orig     netip.AddrPort // where the sandbox sent it
	target   netip.AddrPort // where the proxy sent it
	byName   bool           // allowed by its name
	upstream *net.TCPConn
	closed   bool
}

// close closes both ends; it is safe to call more than once.
func (c *proxied) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	c.client.Close()
	if c.upstream != nil {
		c.upstream.Close()
	}
}

// stillAllowed reports whether the rules pol (ok false: the sandbox is gone)
// still allow the connection as it was decided. An undecided connection is
// decided with the rules of the moment it is, which are at least as new.
func (c *proxied) stillAllowed(pol sandboxPolicy, ok bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.decided {
		return true
	}
	if !ok || !pol.allowInternet {
		return false
	}
	if pol.egress.allowsName(c.host) {
		return true
	}
	return c.target == c.orig && pol.egress.allowsAddr(c.orig.Addr())
}

// handle decides on one connection and, when allowed, carries it.
func (p *EgressProxy) handle(c *proxied) {
	orig, err := originalDst(c.client)
	if err != nil {
		p.refused.Add(1)
		p.opts.Logger.Debug("egress proxy: original destination", "sandbox", c.src, "err", err)
		return
	}
	c.client.SetReadDeadline(time.Now().Add(p.opts.HeaderTimeout))
	var host string
	var head []byte
	switch orig.Port() {
	case httpsPort:
		host, head = peekServerName(c.client, egressHeadLimit)
	case httpPort:
		host, head = peekHost(c.client, egressHeadLimit)
	}
	c.client.SetReadDeadline(time.Time{})
	if _, err := netip.ParseAddr(host); err == nil {
		host = "" // an address is not a name: the CIDR rules decide
	}
	target, byName, ok := p.decide(c.src, host, orig)
	if !ok {
		p.refused.Add(1)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.opts.DialTimeout)
	up, err := p.guard.dial(ctx, target)
	cancel()
	if err != nil {
		p.refused.Add(1)
		p.opts.Logger.Debug("egress proxy: connect", "sandbox", c.src, "to", target, "name", host, "err", err)
		return
	}
	c.mu.Lock()
	c.decided, c.host, c.orig, c.target, c.byName, c.upstream = true, host, orig, target, byName, up
	closed := c.closed
	c.mu.Unlock()
	if closed {
		up.Close()
		p.refused.Add(1)
		return
	}
	// The rules may have changed while the connection was being decided.
	if pol, ok := p.m.policyAt(c.src); !c.stillAllowed(pol, ok) {
		p.refused.Add(1)
		return
	}
	if _, err := up.Write(head); err != nil {
		p.refused.Add(1)
		return
	}
	p.proxied.Add(1)
	splice(c.client, up)
}

// decide applies the sandbox's rules of the moment to a connection to orig
// asking for host, and says where to send it. A name a domain rule allows is
// looked up by the proxy: the connection goes to orig when that is one of the
// name's addresses, else to the first of them.
func (p *EgressProxy) decide(src netip.Addr, host string, orig netip.AddrPort) (netip.AddrPort, bool, bool) {
	pol, ok := p.m.policyAt(src)
	if !ok || !pol.allowInternet {
		return netip.AddrPort{}, false, false
	}
	if pol.egress.allowsName(host) {
		ctx, cancel := context.WithTimeout(context.Background(), p.opts.DialTimeout)
		defer cancel()
		addrs, err := p.resolver.LookupNetIP(ctx, "ip4", host+".")
		if err != nil {
			p.opts.Logger.Debug("egress proxy: look up", "sandbox", src, "name", host, "err", err)
			return netip.AddrPort{}, false, false
		}
		var first netip.Addr
		for _, a := range addrs {
			a = a.Unmap()
			if p.guard.refuses(a) {
				continue
			}
			if a == orig.Addr() {
				return orig, true, true
			}
			if !first.IsValid() {
				first = a
			}
		}
		if !first.IsValid() {
			return netip.AddrPort{}, false, false
		}
		return netip.AddrPortFrom(first, orig.Port()), true, true
	}
	if p.guard.refuses(orig.Addr()) || !pol.egress.allowsAddr(orig.Addr()) {
		return netip.AddrPort{}, false, false
	}
	return orig, false, true
}

// splice copies both ways until both directions have ended. Between two TCP
// connections io.Copy uses splice(2): the bytes never come up to user space.
func splice(a, b *net.TCPConn) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		io.Copy(b, a)
		b.CloseWrite()
	}()
	io.Copy(a, b)
	a.CloseWrite()
	wg.Wait()
}

// originalDst returns where a redirected connection was sent
// (SO_ORIGINAL_DST).
func originalDst(c *net.TCPConn) (netip.AddrPort, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	var addr *unix.IPv6Mreq
	var serr error
	if err := raw.Control(func(fd uintptr) {
		// struct sockaddr_in fits the 16 bytes of an ipv6_mreq.
		addr, serr = unix.GetsockoptIPv6Mreq(int(fd), unix.SOL_IP, unix.SO_ORIGINAL_DST)
	}); err != nil {
		return netip.AddrPort{}, err
	}
	if serr != nil {
		return netip.AddrPort{}, serr
	}
	b := addr.Multiaddr
	port := uint16(b[2])<<8 | uint16(b[3])
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), port), nil
}
