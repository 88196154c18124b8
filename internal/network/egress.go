package network

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// ErrInvalidEgress reports an egress rule that is neither an IPv4 address, an
// IPv4 CIDR nor (where allowed) a domain name.
var ErrInvalidEgress = errors.New("invalid egress rule")

// Egress is a sandbox's per-destination egress rules, with E2B's precedence:
// for each connection, a domain in AllowDomains matching the name the
// connection asks for allows it; else a prefix in AllowCIDRs holding the
// destination address allows it; else a prefix in DenyCIDRs holding it
// refuses it; else it is allowed. Allow always beats deny.
//
// Names are known only for TCP to port 80 (the HTTP Host header) and 443 (the
// TLS server name): that traffic goes through the Manager's egress proxy when
// the sandbox has domain rules. Everything else sees only the CIDR lists,
// which the firewall applies to every packet. The ranges no sandbox may ever
// reach (private, link-local, the sandbox subnet...) stay blocked whatever
// the rules say; rules only narrow what AllowInternet opens.
//
// An Egress is never changed once a Manager has it: replace it instead.
type Egress struct {
	// AllowCIDRs are destinations allowed whatever DenyCIDRs says.
	AllowCIDRs []netip.Prefix `json:"allowCIDRs,omitempty"`
	// AllowDomains are names allowed on ports 80 and 443: "example.com" (that
	// name only), "*.example.com" (any name under it, not the apex) or "*"
	// (every name). Lower case, without a trailing dot.
	AllowDomains []string `json:"allowDomains,omitempty"`
	// DenyCIDRs are destinations refused unless an allow rule matches.
	DenyCIDRs []netip.Prefix `json:"denyCIDRs,omitempty"`
}

// ParseEgress reads E2B's allowOut and denyOut lists. An allow entry is an
// IPv4 address (meaning /32), an IPv4 CIDR or a domain pattern; a deny entry
// an address or CIDR. IPv6 deny entries are accepted and dropped, since no
// sandbox has IPv6 (the firewall refuses all of it); IPv6 allow entries, which
// could not be honoured, are an error. Empty lists give nil.
func ParseEgress(allow, deny []string) (*Egress, error) {
	var e Egress
	for _, s := range allow {
		if p, ok, err := parseCIDR(s); ok {
			if err != nil {
				return nil, fmt.Errorf("allow %q: %w", s, err)
			}
			if !p.Addr().Is4() {
				return nil, fmt.Errorf("%w: allow %q: IPv6 cannot be allowed, sandboxes have no IPv6", ErrInvalidEgress, s)
			}
			e.AllowCIDRs = appendPrefix(e.AllowCIDRs, p)
			continue
		}
		d, err := normalizeDomain(s)
		if err != nil {
			return nil, fmt.Errorf("allow %q: %w", s, err)
		}
		if !slices.Contains(e.AllowDomains, d) {
			e.AllowDomains = append(e.AllowDomains, d)
		}
	}
	for _, s := range deny {
		p, ok, err := parseCIDR(s)
		if !ok {
			err = fmt.Errorf("%w: not an IP address or CIDR", ErrInvalidEgress)
		}
		if err != nil {
			return nil, fmt.Errorf("deny %q: %w", s, err)
		}
		if p.Addr().Is4() {
			e.DenyCIDRs = appendPrefix(e.DenyCIDRs, p)
		}
	}
	if e.empty() {
		return nil, nil
	}
	return &e, nil
}

// parseCIDR reads s as an address or CIDR. ok is false when s looks like
// neither (no '/' and not an address), i.e. may be a domain; err is set when
// it looks like one but is not valid, or is an unspecified address.
func parseCIDR(s string) (netip.Prefix, bool, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, true, fmt.Errorf("%w: not a CIDR", ErrInvalidEgress)
		}
		if p.Addr().Is4In6() {
			return netip.Prefix{}, true, fmt.Errorf("%w: IPv4-mapped IPv6 CIDR", ErrInvalidEgress)
		}
		return p.Masked(), true, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		if strings.Contains(s, ":") {
			return netip.Prefix{}, true, fmt.Errorf("%w: not an IP address", ErrInvalidEgress)
		}
		return netip.Prefix{}, false, nil
	}
	a = a.Unmap().WithZone("")
	if a.IsUnspecified() {
		return netip.Prefix{}, true, fmt.Errorf("%w: the unspecified address matches nothing (use 0.0.0.0/0 for all traffic)", ErrInvalidEgress)
	}
	return netip.PrefixFrom(a, a.BitLen()), true, nil
}

func appendPrefix(ps []netip.Prefix, p netip.Prefix) []netip.Prefix {
	if slices.Contains(ps, p) {
		return ps
	}
	return append(ps, p)
}

// normalizeDomain checks a domain pattern and returns it lower-cased without
// a trailing dot: "*", "*.name" or "name", where name is dot-separated labels
// of letters, digits, '-' and '_' (1-63 bytes each, 253 in all).
func normalizeDomain(s string) (string, error) {
	d := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(s), "."))
	if d == "*" {
		return d, nil
	}
	name := strings.TrimPrefix(d, "*.")
	if name == "" || len(name) > 253 {
		return "", fmt.Errorf("%w: not an IP address, CIDR or domain name", ErrInvalidEgress)
	}
	for _, l := range strings.Split(name, ".") {
		if !domainLabel(l) {
			return "", fmt.Errorf("%w: not an IP address, CIDR or domain name (label %q)", ErrInvalidEgress, l)
		}
	}
	return d, nil
}

// domainLabel reports whether l is a host name label (underscores allowed, as
// some service names carry them).
func domainLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

// empty reports whether e has no rule at all.
func (e *Egress) empty() bool {
	return e == nil || len(e.AllowCIDRs)+len(e.AllowDomains)+len(e.DenyCIDRs) == 0
}

// hasDomains reports whether any rule needs the name of a connection.
func (e *Egress) hasDomains() bool { return e != nil && len(e.AllowDomains) > 0 }

// allowsName reports whether a domain rule matches host (case-insensitive).
func (e *Egress) allowsName(host string) bool {
	if e == nil || host == "" {
		return false
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, d := range e.AllowDomains {
		if domainMatches(d, host) {
			return true
		}
	}
	return false
}

// domainMatches matches a normalized pattern against a lower-case name.
func domainMatches(pattern, host string) bool {
	switch {
	case pattern == "*":
		return true
	case strings.HasPrefix(pattern, "*."):
		return strings.HasSuffix(host, pattern[1:]) && len(host) > len(pattern)-1
	default:
		return pattern == host
	}
}

// allowsAddr applies the CIDR rules to a destination address.
func (e *Egress) allowsAddr(a netip.Addr) bool {
	if e == nil {
		return true
	}
	a = a.Unmap()
	for _, p := range e.AllowCIDRs {
		if p.Contains(a) {
			return true
		}
	}
	for _, p := range e.DenyCIDRs {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// deniesAll reports whether the deny list covers every IPv4 destination, so
// that only what an allow rule names gets out.
func (e *Egress) deniesAll() bool {
	if e == nil {
		return false
	}
	for _, p := range e.DenyCIDRs {
		if p.Bits() == 0 {
			return true
		}
	}
	return false
}

// resolvable reports whether the DNS forwarder answers a query for name: a
// name a domain rule allows always, any other name unless the deny list
// covers everything (then only addresses in AllowCIDRs are reachable, and a
// name is of no use to the sandbox).
func (e *Egress) resolvable(name string) bool {
	return e.allowsName(name) || !e.deniesAll()
}

// Strings returns the rules as E2B's allowOut and denyOut lists.
func (e *Egress) Strings() (allow, deny []string) {
	if e == nil {
		return nil, nil
	}
	for _, p := range e.AllowCIDRs {
		allow = append(allow, p.String())
	}
	allow = append(allow, e.AllowDomains...)
	for _, p := range e.DenyCIDRs {
		deny = append(deny, p.String())
	}
	return allow, deny
}

// equal reports whether e and o hold the same rules in the same order.
func (e *Egress) equal(o *Egress) bool {
	if e.empty() || o.empty() {
		return e.empty() == o.empty()
	}
	return slices.Equal(e.AllowCIDRs, o.AllowCIDRs) && slices.Equal(e.AllowDomains, o.AllowDomains) &&
		slices.Equal(e.DenyCIDRs, o.DenyCIDRs)
}

// Validate checks rules not made by ParseEgress (e.g. read from the wire):
// masked IPv4 prefixes and normalized domain patterns. Setup and SetOptions
// refuse rules it refuses. nil is valid (no rules).
func (e *Egress) Validate() error {
	if e == nil {
		return nil
	}
	for _, list := range [][]netip.Prefix{e.AllowCIDRs, e.DenyCIDRs} {
		for _, p := range list {
			if !p.IsValid() || !p.Addr().Is4() || p.Masked() != p {
				return fmt.Errorf("%w: %s is not a masked IPv4 prefix", ErrInvalidEgress, p)
			}
		}
	}
	for _, d := range e.AllowDomains {
		if n, err := normalizeDomain(d); err != nil || n != d {
			return fmt.Errorf("%w: domain %q is not a normalized pattern", ErrInvalidEgress, d)
		}
	}
	return nil
}
