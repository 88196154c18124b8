package network

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults applied by StartEgressProxy to zero EgressProxyOptions fields.
const (
	DefaultEgressHeaderTimeout = 10 * time.Second
	DefaultEgressDialTimeout   = 10 * time.Second
	DefaultEgressMaxConns      = 8192
	DefaultEgressSandboxConns  = 512
	// egressHeadLimit bounds what the proxy reads before it knows the name a
	// connection asks for: a TLS ClientHello or an HTTP request head.
	egressHeadLimit = 64 << 10
)

// EgressProxyOptions configure a Manager's egress proxy.
type EgressProxyOptions struct {
	// Port is the host port it listens on; 0 (the default) lets the kernel
	// pick a free one. Sandboxes never see it.
	Port int
	// Upstreams are the resolvers the proxy looks allowed names up with (the
	// DNS forwarder's, so that both agree). Empty means the nameserver lines
	// of ResolvConf (default /etc/resolv.conf), as for DNSOptions.
	Upstreams  []netip.AddrPort
	ResolvConf string
	// HeaderTimeout bounds the wait for a connection's TLS ClientHello or
	// HTTP request head; default 10s.
	HeaderTimeout time.Duration
	// DialTimeout bounds the name lookup and the connection to the
	// destination; default 10s.
	DialTimeout time.Duration
	// MaxConns bounds the connections carried at once, SandboxConns those of
	// one sandbox; further ones are closed at once. Defaults
	// DefaultEgressMaxConns and DefaultEgressSandboxConns.
	MaxConns     int
	SandboxConns int
	// Logger receives the proxy's rare errors; nil discards them.
	Logger *slog.Logger
}

// withDefaults returns o with defaults filled in and upstreams resolved.
func (o EgressProxyOptions) withDefaults() (EgressProxyOptions, error) {
	switch {
	case o.Port < 0 || o.Port > 65535:
		return o, fmt.Errorf("%w: egress proxy port %d out of range 0-65535", ErrInvalidConfig, o.Port)
	case o.HeaderTimeout < 0 || o.DialTimeout < 0 || o.MaxConns < 0 || o.SandboxConns < 0:
		return o, fmt.Errorf("%w: negative egress proxy timeout or limit", ErrInvalidConfig)
	}
	if o.HeaderTimeout == 0 {
		o.HeaderTimeout = DefaultEgressHeaderTimeout
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = DefaultEgressDialTimeout
	}
	if o.MaxConns == 0 {
		o.MaxConns = DefaultEgressMaxConns
	}
	if o.SandboxConns == 0 {
		o.SandboxConns = DefaultEgressSandboxConns
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	// The DNS options resolve upstreams the same way; borrow them.
	dns, err := DNSOptions{Upstreams: o.Upstreams, ResolvConf: o.ResolvConf, Logger: o.Logger}.withDefaults()
	if err != nil {
		return o, err
	}
	o.Upstreams = dns.Upstreams
	return o, nil
}

// EgressStats counts what the egress proxy did with the connections it took.
type EgressStats struct {
	// Proxied connections were allowed and carried to their destination.
	Proxied uint64
	// Refused connections were closed: the rules refused them, their
	// destination could not be reached, or a limit was hit.
	Refused uint64
	// Closed connections were carried until a rule change refused them.
	Closed uint64
	// Checked connections were allowed on the kernel path: their name was
	// read from their first packets (or their address alone allowed them)
	// and the kernel forwarded them, without the proxy carrying them.
	Checked uint64
}

// EgressProxy carries the port 80 and 443 connections of sandboxes with
// domain rules. It reads the name each one asks for (the TLS server name, the
// HTTP Host header), decides by the sandbox's rules of the moment and, when
// allowed, connects to the destination itself and splices the two
// connections together in the kernel. A connection allowed by its name goes
// to an address the proxy looked that name up at, never to one the sandbox
// chose for it, so a made-up name cannot reach an address the rules refuse.
// See StartEgressProxy.
type EgressProxy struct {
	m        *Manager
	opts     EgressProxyOptions
	ln       *net.TCPListener
	resolver *net.Resolver
	guard    dialGuard
	checker  *egressChecker // nil: every connection comes to the proxy

	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   map[*proxied]struct{}
	bySrc   map[netip.Addr]int
	closed  bool
	done    chan struct{}
	err     error
	proxied atomic.Uint64
	refused atomic.Uint64
	cut     atomic.Uint64
	checked atomic.Uint64
}

// StartEgressProxy starts the Manager's egress proxy and points the
// redirect of sandboxes with domain rules at it. Without a running proxy
// those connections are refused (their rules deny all other traffic), so it
// fails closed. It listens on the wildcard address of opts.Port, which the
// firewall opens to sandboxes only for redirected connections, and serves
// only connections from one of the Manager's sandbox addresses to its own
// gateway. ctx bounds only the start. Run one per Manager at a time, after
// NewManager and before any Uninstall.
func (m *Manager) StartEgressProxy(ctx context.Context, opts EgressProxyOptions) (*EgressProxy, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("start egress proxy: %w", err)
	}
	p := &EgressProxy{
		m: m, opts: opts,
		resolver: newResolver(opts.Upstreams, opts.DialTimeout),
		guard:    dialGuard{blocked: m.blockedRanges()},
		conns:    make(map[*proxied]struct{}),
		bySrc:    make(map[netip.Addr]int),
		done:     make(chan struct{}),
	}
	addr := net.JoinHostPort("0.0.0.0", strconv.Itoa(opts.Port))
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp4", addr)
	if err != nil {
		return nil, fmt.Errorf("start egress proxy: listen on %s: %w", addr, err)
	}
	p.ln = ln.(*net.TCPListener)
	queue := -1
	if p.checker = p.startChecker(); p.checker != nil {
		queue = int(p.checker.q.num)
	}
	if err := m.fw.installProxy(ctx, p.Port(), queue); err != nil {
		p.ln.Close()
		if p.checker != nil {
			p.checker.close()
		}
		return nil, fmt.Errorf("start egress proxy: %w", err)
	}
	m.mu.Lock()
	m.proxy = p
	m.mu.Unlock()
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// blockedRanges are the destinations no sandbox may reach.
func (m *Manager) blockedRanges() []netip.Prefix {
	out := append([]netip.Prefix(nil), blockedV4...)
	out = append(out, m.cfg.Subnet)
	return append(out, m.cfg.ExtraBlocked...)
}

// Port returns the host port the proxy listens on.
func (p *EgressProxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// Stats reports what the proxy did with the connections it took.
func (p *EgressProxy) Stats() EgressStats {
	return EgressStats{Proxied: p.proxied.Load(), Refused: p.refused.Load(), Closed: p.cut.Load(), Checked: p.checked.Load()}
}

// Close removes the redirect, stops the listener, closes every connection
// the proxy carries and waits for them to end. It is safe to call more than
// once; later calls return the first one's result.
func (p *EgressProxy) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		select {
		case <-p.done:
			return p.err
		case <-ctx.Done():
			return fmt.Errorf("close egress proxy: %w", ctx.Err())
		}
	}
	p.closed = true
	for c := range p.conns {
		c.close()
	}
	p.mu.Unlock()
	p.m.mu.Lock()
	if p.m.proxy == p {
		p.m.proxy = nil
	}
	p.m.mu.Unlock()
	err := errors.Join(p.m.fw.clearProxy(ctx), p.ln.Close())
	if p.checker != nil {
		p.checker.close()
	}
	p.wg.Wait()
	if err != nil {
		err = fmt.Errorf("close egress proxy: %w", err)
	}
	p.err = err
	close(p.done)
	return err
}

// serve accepts connections until the listener is closed.
func (p *EgressProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			p.opts.Logger.Warn("egress proxy: accept", "err", err)
			time.Sleep(50 * time.Millisecond) // e.g. out of file descriptors
			continue
		}
		src := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
		dst := c.LocalAddr().(*net.TCPAddr).AddrPort().Addr()
		if !sandboxToGateway(p.m.cfg.Subnet, src, dst) {
			c.Close()
			continue
		}
		pc := &proxied{src: src, client: c}
		if !p.track(pc) {
			p.refused.Add(1)
			c.Close()
			continue
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.untrack(pc)
			p.handle(pc)
		}()
	}
}

// track registers a new connection within the limits; false when over them
// or closing.
func (p *EgressProxy) track(c *proxied) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.conns) >= p.opts.MaxConns || p.bySrc[c.src] >= p.opts.SandboxConns {
		return false
	}
	p.conns[c] = struct{}{}
	p.bySrc[c.src]++
	return true
}

// untrack forgets a connection that ended and closes both its ends.
func (p *EgressProxy) untrack(c *proxied) {
	c.close()
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
	if p.bySrc[c.src]--; p.bySrc[c.src] <= 0 {
		delete(p.bySrc, c.src)
	}
}

// recheck closes the connections of the sandbox at addr that its rules, just
// changed, no longer allow.
func (p *EgressProxy) recheck(addr netip.Addr) {
	pol, ok := p.m.policyAt(addr)
	if p.checker != nil {
		p.checker.recheck(addr, pol, ok)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		if c.src == addr && !c.stillAllowed(pol, ok) {
			p.cut.Add(1)
			c.close()
		}
	}
}
