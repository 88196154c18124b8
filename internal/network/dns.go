package network

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// DNSForwarder gives the Manager's sandboxes DNS through the host's
// resolvers. See StartDNS.
type DNSForwarder struct {
	opts   DNSOptions
	fw     *firewall
	subnet netip.Prefix
	// policy returns the choices of the sandbox at an address, whose egress
	// rules say which names it may look up.
	policy func(netip.Addr) (sandboxPolicy, bool)
	// answers is where the answers sandboxes with domain rules get are
	// noted, before they are sent.
	answers *answerBook
	udp     *net.UDPConn
	tcp     *net.TCPListener

	ctx    context.Context // cancelled by Close, ends upstream exchanges
	cancel context.CancelFunc
	wg     sync.WaitGroup
	query  chan struct{} // UDP queries in flight
	conns  chan struct{} // TCP connections open
	limits *sourceLimits
	count  dnsCounters

	mu     sync.Mutex
	open   map[*net.TCPConn]struct{}
	closed bool
	done   chan struct{} // closed when Close has finished
	err    error         // Close's result
}

// StartDNS starts a DNS forwarder for the Manager's sandboxes and redirects
// to it the DNS queries (UDP and TCP to port 53 of any address) of
// sandboxes allowed on the internet; the others get no DNS, as they get no
// egress. A sandbox whose egress rules deny all traffic gets answers only
// for the names its domain rules allow (others are REFUSED). It listens on the wildcard address of opts.Port, which the
// firewall opens to sandboxes only for redirected queries, and answers only
// queries that come from one of the Manager's sandbox addresses to that
// sandbox's own gateway (where REDIRECT sends them), so it is never a
// resolver for anyone else even where the host's firewall lets the world
// reach the port. ctx bounds only the start; the forwarder runs until
// Close. Run one forwarder per Manager at a time (a second one takes the
// redirect over), after NewManager and before any Uninstall.
func (m *Manager) StartDNS(ctx context.Context, opts DNSOptions) (*DNSForwarder, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("start DNS forwarder: %w", err)
	}
	d := &DNSForwarder{
		opts: opts, fw: m.fw, subnet: m.cfg.Subnet, policy: m.policyAt, answers: m.answers,
		query:  make(chan struct{}, opts.MaxInFlight),
		conns:  make(chan struct{}, opts.MaxTCPConns),
		limits: newSourceLimits(opts),
		open:   make(map[*net.TCPConn]struct{}),
		done:   make(chan struct{}),
	}
	if err := d.listen(ctx); err != nil {
		return nil, fmt.Errorf("start DNS forwarder: %w", err)
	}
	udpPort, tcpPort := d.Ports()
	if err := m.fw.installDNS(ctx, udpPort, tcpPort, opts.SandboxRate, opts.SandboxBurst); err != nil {
		d.udp.Close()
		d.tcp.Close()
		return nil, fmt.Errorf("start DNS forwarder: %w", err)
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	d.wg.Add(2)
	go d.serveUDP()
	go d.serveTCP()
	return d, nil
}

// listen opens both sockets; the UDP one reports each query's destination
// address (IP_PKTINFO), so that the reply leaves from it.
func (d *DNSForwarder) listen(ctx context.Context) error {
	addr := net.JoinHostPort("0.0.0.0", strconv.Itoa(d.opts.Port))
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(ctx, "udp4", addr)
	if err != nil {
		return fmt.Errorf("listen on udp %s: %w", addr, err)
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp4", addr)
	if err != nil {
		pc.Close()
		return fmt.Errorf("listen on tcp %s: %w", addr, err)
	}
	d.udp, d.tcp = pc.(*net.UDPConn), ln.(*net.TCPListener)
	return nil
}

// Ports returns the host ports the forwarder listens on.
func (d *DNSForwarder) Ports() (udp, tcp int) {
	return d.udp.LocalAddr().(*net.UDPAddr).Port, d.tcp.Addr().(*net.TCPAddr).Port
}

// Stats reports what the forwarder did with the queries it has read.
func (d *DNSForwarder) Stats() DNSStats { return d.count.stats() }

// Upstreams returns the resolvers the forwarder relays to.
func (d *DNSForwarder) Upstreams() []netip.AddrPort {
	return append([]netip.AddrPort(nil), d.opts.Upstreams...)
}

// Close removes the redirect, stops the listeners and waits for the queries
// in flight to end (their upstream exchanges are cancelled). It is safe to
// call more than once; later calls return the first one's result.
func (d *DNSForwarder) Close(ctx context.Context) error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		select {
		case <-d.done:
			return d.err
		case <-ctx.Done():
			return fmt.Errorf("close DNS forwarder: %w", ctx.Err())
		}
	}
	d.closed = true
	for c := range d.open {
		c.Close()
	}
	d.mu.Unlock()

	err := d.fw.clearDNS(ctx)
	d.cancel()
	err = errors.Join(err, d.udp.Close(), d.tcp.Close())
	d.wg.Wait()
	if err != nil {
		err = fmt.Errorf("close DNS forwarder: %w", err)
	}
	d.err = err
	close(d.done)
	return err
}

// fromSandbox reports whether a packet from src to dst is one of the
// Manager's sandboxes talking to its own gateway, which is where the
// redirect sends its queries.
func (d *DNSForwarder) fromSandbox(src, dst netip.Addr) bool {
	return sandboxToGateway(d.subnet, src, dst)
}

// sandboxToGateway reports whether src is a sandbox address of subnet and dst
// that sandbox's gateway, where the firewall's redirects lead.
func sandboxToGateway(subnet netip.Prefix, src, dst netip.Addr) bool {
	src, dst = src.Unmap(), dst.Unmap()
	if !src.Is4() || !subnet.Contains(src) {
		return false
	}
	s, base := src.As4(), subnet.Addr().As4()
	off := binary.BigEndian.Uint32(s[:]) - binary.BigEndian.Uint32(base[:])
	return off%4 == 2 && src.Prev() == dst
}

// relay asks the upstreams in turn and returns the first answer, or
// SERVFAIL (nil if the query cannot be answered even so). stream says the
// sandbox asked over TCP.
func (d *DNSForwarder) relay(stream bool, query []byte) []byte {
	var errs []error
	for _, up := range d.opts.Upstreams {
		resp, err := d.ask(up, stream, query)
		if err == nil {
			return resp
		}
		if d.ctx.Err() != nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", up, err))
	}
	d.opts.Logger.Debug("DNS query failed at every upstream", "tcp", stream, "err", errors.Join(errs...))
	return errorReply(query, dnsRcodeFail)
}

// ask gets one upstream's answer over UDP, as resolvers are asked. A query
// that came over TCP goes over TCP too when the UDP answer is truncated or
// missing; should that fail, the truncated answer is still returned. Many
// hosts' resolvers (e.g. some cloud ones) do not serve TCP at all.
func (d *DNSForwarder) ask(up netip.AddrPort, stream bool, query []byte) ([]byte, error) {
	resp, err := exchange(d.ctx, "udp", up, query, d.opts.Timeout)
	if !stream || (err == nil && !truncated(resp)) || d.ctx.Err() != nil {
		return resp, err
	}
	full, terr := exchange(d.ctx, "tcp", up, query, d.opts.Timeout)
	switch {
	case terr == nil:
		return full, nil
	case err == nil:
		return resp, nil
	}
	return nil, errors.Join(err, fmt.Errorf("over TCP: %w", terr))
}

// track registers a TCP connection for Close; false once closing.
func (d *DNSForwarder) track(c *net.TCPConn, add bool) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !add {
		delete(d.open, c)
		return true
	}
	if d.closed {
		return false
	}
	d.open[c] = struct{}{}
	return true
}

// relayFor relays query for the sandbox at src and notes the answer's
// addresses when the sandbox's domain rules allow the name.
func (d *DNSForwarder) relayFor(src netip.Addr, stream bool, query []byte) []byte {
	resp := d.relay(stream, query)
	if resp != nil {
		if pol, ok := d.policy(src); ok {
			d.answers.note(src, pol, resp)
		}
	}
	return resp
}

// nameAllowed reports whether the egress rules of the sandbox at src let it
// look up what query asks for. Sandboxes without rules may ask anything;
// one whose deny rules cover everything only for names its domain rules
// allow, in a query of one question the forwarder can read.
func (d *DNSForwarder) nameAllowed(src netip.Addr, query []byte) bool {
	pol, ok := d.policy(src)
	if !ok {
		return false
	}
	if !pol.egress.deniesAll() {
		return true
	}
	name, ok := questionName(query)
	return ok && pol.egress.resolvable(name)
}
