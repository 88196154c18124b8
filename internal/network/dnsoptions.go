package network

import (
	"fmt"
	"log/slog"
	"net/netip"
	"time"
)

// Defaults applied by StartDNS to zero DNSOptions fields.
const (
	DefaultResolvConf     = "/etc/resolv.conf"
	DefaultDNSTimeout     = 2 * time.Second
	DefaultDNSMaxInFlight = 256
	DefaultDNSMaxTCPConns = 64
	// dnsTCPIdle closes a sandbox's TCP DNS connection that sends nothing.
	dnsTCPIdle = 10 * time.Second
)

// fallbackUpstream is used when resolv.conf names no nameserver, as the C
// library does.
var fallbackUpstream = netip.MustParseAddrPort("127.0.0.1:53")

// DNSOptions configure the DNS forwarder of a Manager.
type DNSOptions struct {
	// Upstreams are the resolvers queries are relayed to, tried in order.
	// Empty means the nameserver lines of ResolvConf, read once at start.
	Upstreams []netip.AddrPort
	// ResolvConf is read when Upstreams is empty; default /etc/resolv.conf.
	// When it is missing or names no nameserver, 127.0.0.1:53 is used.
	ResolvConf string
	// Port is the host port of both listeners. 0 (the default) lets the
	// kernel pick free ones, so the forwarder never collides with a DNS
	// server or another node on the host; sandboxes never see the port.
	Port int
	// Timeout bounds each attempt at one upstream; default 2s.
	Timeout time.Duration
	// MaxInFlight bounds the UDP queries relayed at once; further ones are
	// dropped (clients retry). Default 256.
	MaxInFlight int
	// MaxTCPConns bounds the TCP connections from sandboxes; further ones
	// are closed at once. Default 64.
	MaxTCPConns int
	// SandboxRate and SandboxBurst are each sandbox's token bucket of queries
	// (per second, and at once); queries beyond it are answered REFUSED, and
	// beyond as many refusals again dropped. The firewall drops a sandbox's
	// packets to the forwarder beyond four times the rate and burst before they
	// reach it. Defaults DefaultDNSRate and DefaultDNSBurst.
	SandboxRate  float64
	SandboxBurst int
	// SandboxInFlight bounds one sandbox's queries relayed at once (further ones
	// are refused), so that no sandbox holds all of MaxInFlight; default
	// DefaultDNSSandboxInFlight.
	SandboxInFlight int
	// SandboxTCPConns bounds one sandbox's TCP connections (further ones are
	// closed at once) within MaxTCPConns; default DefaultDNSSandboxTCPConns.
	SandboxTCPConns int
	// Logger receives the forwarder's rare errors; nil discards them.
	Logger *slog.Logger
}

// withDefaults returns o with defaults filled in and upstreams resolved.
func (o DNSOptions) withDefaults() (DNSOptions, error) {
	switch {
	case o.Port < 0 || o.Port > 65535:
		return o, fmt.Errorf("%w: DNS port %d out of range 0-65535", ErrInvalidConfig, o.Port)
	case o.Timeout < 0 || o.MaxInFlight < 0 || o.MaxTCPConns < 0:
		return o, fmt.Errorf("%w: negative DNS timeout or limit", ErrInvalidConfig)
	case o.SandboxRate < 0 || o.SandboxBurst < 0 || o.SandboxInFlight < 0 || o.SandboxTCPConns < 0:
		return o, fmt.Errorf("%w: negative per-sandbox DNS limit", ErrInvalidConfig)
	case o.SandboxRate > maxDNSRate || o.SandboxBurst > maxDNSBurst:
		return o, fmt.Errorf("%w: DNS SandboxRate %g or SandboxBurst %d above %d or %d", ErrInvalidConfig, o.SandboxRate, o.SandboxBurst, maxDNSRate, maxDNSBurst)
	}
	for _, u := range o.Upstreams {
		if !u.IsValid() || u.Port() == 0 {
			return o, fmt.Errorf("%w: DNS upstream %s is not an address and port", ErrInvalidConfig, u)
		}
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultDNSTimeout
	}
	if o.MaxInFlight == 0 {
		o.MaxInFlight = DefaultDNSMaxInFlight
	}
	if o.MaxTCPConns == 0 {
		o.MaxTCPConns = DefaultDNSMaxTCPConns
	}
	if o.SandboxRate == 0 {
		o.SandboxRate = DefaultDNSRate
	}
	if o.SandboxBurst == 0 {
		o.SandboxBurst = DefaultDNSBurst
	}
	if o.SandboxInFlight == 0 {
		o.SandboxInFlight = DefaultDNSSandboxInFlight
	}
	if o.SandboxTCPConns == 0 {
		o.SandboxTCPConns = DefaultDNSSandboxTCPConns
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if len(o.Upstreams) == 0 {
		if o.ResolvConf == "" {
			o.ResolvConf = DefaultResolvConf
		}
		ups, err := readResolvConf(o.ResolvConf)
		if err != nil {
			o.Logger.Warn("no DNS upstreams from resolv.conf, using the fallback", "path", o.ResolvConf, "err", err, "fallback", fallbackUpstream)
		}
		o.Upstreams = ups
		if len(ups) == 0 {
			o.Upstreams = []netip.AddrPort{fallbackUpstream}
		}
	}
	o.Upstreams = append([]netip.AddrPort(nil), o.Upstreams...)
	return o, nil
}
