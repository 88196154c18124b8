// Package network gives every sandbox its own Linux network namespace, joined
// to the host by a veth pair, with a /30 taken from a private subnet, NAT for
// egress and the firewall rules that isolate sandboxes from the host, from
// each other and from private networks.
//
// gVisor runs each sandbox with --network=sandbox and the OCI spec's network
// namespace path set to Endpoint.NetNSPath: it takes over the namespace's only
// configured interface (eth0), its address and its default route.
//
// Security model (all rules are host-wide and keyed on the veth name prefix,
// so a veth that exists without any per-sandbox state is fully blocked):
//   - raw PREROUTING: packets from a sandbox veth whose source address does
//     not route back through that veth (spoofing) are dropped before
//     connection tracking sees them.
//   - INPUT: a sandbox may only send the host replies to connections the host
//     opened (conntrack ESTABLISHED,RELATED); everything else is dropped.
//   - FORWARD: sandbox-to-sandbox traffic is dropped; nothing new is forwarded
//     into a sandbox; egress to private, link-local, loopback, multicast,
//     broadcast and reserved ranges is dropped; other egress is accepted only
//     from veths in the "internet" device group (AllowInternet), which is a
//     per-link attribute changed with one netlink call.
//   - nat POSTROUTING: egress from the subnet is masqueraded.
//   - FORWARD, shared by the Managers of a host (LELANTOS-FORWARDING): if
//     ip_forward was off before the first of them turned it on, forwarded
//     packets that neither come from nor go to a sandbox veth are dropped, so
//     the host forwards nothing else it did not forward before; the last
//     Manager's Uninstall turns ip_forward back off and removes the chain.
//   - DNS (while a DNSForwarder from StartDNS runs): nat PREROUTING redirects
//     queries to port 53 of any address from veths in the internet group to
//     the forwarder on the host, and INPUT lets exactly those redirected
//     packets reach it; sandboxes without internet get no DNS. Each sandbox
//     has its own share of the forwarder (a token bucket of queries, queries
//     in flight, TCP connections), and the firewall drops a flood from one
//     sandbox before it reaches the socket all of them share.
//   - IPv6 is disabled on both ends of every veth and ip6tables drops any
//     IPv6 packet to or from a sandbox veth.
package network

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
)

// Defaults applied by NewManager to zero Config fields.
const (
	DefaultNamePrefix  = "lel"
	DefaultChainPrefix = "LELANTOS"
	DefaultNetNSDir    = "/run/netns"
	// InternetGroup is the device group of host-side veths whose sandbox may
	// reach the internet. Group 0 (the kernel default) means no egress.
	InternetGroup uint32 = 0x4c454c01
)

// DefaultSubnet is the pool sandbox addresses come from when Config.Subnet is
// unset.
var DefaultSubnet = netip.MustParsePrefix("10.231.0.0/16")

// Sentinel errors callers may branch on.
var (
	// ErrInvalidConfig reports an unusable Config.
	ErrInvalidConfig = errors.New("invalid network config")
	// ErrInvalidSandboxID reports a sandbox ID that cannot name files and links.
	ErrInvalidSandboxID = errors.New("invalid sandbox id")
	// ErrNotFound reports an unknown sandbox.
	ErrNotFound = errors.New("sandbox network not found")
	// ErrExhausted reports that every address in the subnet is allocated.
	ErrExhausted = errors.New("sandbox subnet exhausted")
	// ErrInUse reports that host-wide state cannot be removed while
	// allocations remain.
	ErrInUse = errors.New("sandbox networks still allocated")
)

// Config configures a Manager. Two Managers on one host need distinct
// StateDir, Subnet, NamePrefix and ChainPrefix. The Manager's process must
// run in the host's network namespace.
type Config struct {
	// StateDir holds one allocation record per sandbox (e.g. <data>/network).
	StateDir string
	// Subnet is the IPv4 pool; each sandbox gets a /30 of it (host side .1,
	// sandbox .2). Default 10.231.0.0/16.
	Subnet netip.Prefix
	// NamePrefix starts every veth and namespace name ("lel" by default, 1 to
	// 7 lower-case letters or digits). Interfaces whose names start with it
	// are treated as sandbox veths by the firewall, so reserve it.
	NamePrefix string
	// ChainPrefix names the iptables chains (<ChainPrefix>-FWD and so on);
	// default "LELANTOS".
	ChainPrefix string
	// NetNSDir is where namespaces are bind-mounted; default /run/netns.
	NetNSDir string
	// MTU of both veth ends; 0 keeps the kernel default (1500). Set it to the
	// uplink's MTU when that is smaller.
	MTU int
	// ExtraBlocked are further destinations sandboxes may never reach, e.g.
	// the host's own public LAN. Private ranges are always blocked.
	ExtraBlocked []netip.Prefix
}

var (
	namePrefixRE  = regexp.MustCompile(`^[a-z][a-z0-9]{0,6}$`)
	chainPrefixRE = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,19}$`)
	sandboxIDRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)
)

// withDefaults returns cfg with defaults filled in, or an error naming the
// first bad field.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.StateDir == "" {
		return cfg, fmt.Errorf("%w: StateDir is required", ErrInvalidConfig)
	}
	if !cfg.Subnet.IsValid() {
		cfg.Subnet = DefaultSubnet
	}
	if cfg.NamePrefix == "" {
		cfg.NamePrefix = DefaultNamePrefix
	}
	if cfg.ChainPrefix == "" {
		cfg.ChainPrefix = DefaultChainPrefix
	}
	if cfg.NetNSDir == "" {
		cfg.NetNSDir = DefaultNetNSDir
	}
	switch {
	case !cfg.Subnet.Addr().Is4():
		return cfg, fmt.Errorf("%w: Subnet %s is not IPv4", ErrInvalidConfig, cfg.Subnet)
	case cfg.Subnet.Bits() < 8 || cfg.Subnet.Bits() > 29:
		return cfg, fmt.Errorf("%w: Subnet %s must be between /8 and /29", ErrInvalidConfig, cfg.Subnet)
	case cfg.Subnet.Masked() != cfg.Subnet:
		return cfg, fmt.Errorf("%w: Subnet %s has host bits set", ErrInvalidConfig, cfg.Subnet)
	case !namePrefixRE.MatchString(cfg.NamePrefix):
		return cfg, fmt.Errorf("%w: NamePrefix %q must be 1-7 lower-case letters or digits, starting with a letter", ErrInvalidConfig, cfg.NamePrefix)
	case !chainPrefixRE.MatchString(cfg.ChainPrefix):
		return cfg, fmt.Errorf("%w: ChainPrefix %q must be 1-20 upper-case letters, digits or _", ErrInvalidConfig, cfg.ChainPrefix)
	case cfg.MTU != 0 && (cfg.MTU < 576 || cfg.MTU > 65535):
		return cfg, fmt.Errorf("%w: MTU %d out of range 576-65535", ErrInvalidConfig, cfg.MTU)
	}
	for _, p := range cfg.ExtraBlocked {
		if !p.IsValid() || !p.Addr().Is4() {
			return cfg, fmt.Errorf("%w: ExtraBlocked entry %s is not an IPv4 prefix", ErrInvalidConfig, p)
		}
	}
	return cfg, nil
}

// validateSandboxID rejects IDs that are unsafe as file names.
func validateSandboxID(id string) error {
	if !sandboxIDRE.MatchString(id) {
		return fmt.Errorf("%w: %q (want 1-128 of [A-Za-z0-9_.-], starting with a letter or digit)", ErrInvalidSandboxID, id)
	}
	return nil
}
