package network

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
)

// blockedV4 are destinations no sandbox may reach, whatever AllowInternet
// says: "this network", private, shared (CGNAT), loopback, link-local
// (metadata services), multicast and reserved/broadcast ranges.
var blockedV4 = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("224.0.0.0/4"),
	netip.MustParsePrefix("240.0.0.0/4"),
}

// firewall renders and installs the host-wide iptables state. Every rule
// lives in chains it owns; the only rules it adds to built-in chains are
// unconditional jumps into them, inserted first.
type firewall struct {
	chain  string // chain prefix, e.g. LELANTOS
	iface  string // iptables wildcard for sandbox veths, e.g. lel+
	subnet netip.Prefix
	extra  []netip.Prefix
	ipv6   bool
}

func newFirewall(cfg Config) *firewall {
	_, err := os.Stat("/proc/sys/net/ipv6")
	return &firewall{
		chain:  cfg.ChainPrefix,
		iface:  cfg.NamePrefix + "+",
		subnet: cfg.Subnet,
		extra:  cfg.ExtraBlocked,
		ipv6:   err == nil,
	}
}

// jump is one rule in a built-in chain that enters one of ours.
type jump struct{ table, builtin, chain string }

func (f *firewall) name(s string) string { return f.chain + "-" + s }

func (f *firewall) jumpsV4() []jump {
	return []jump{
		{"raw", "PREROUTING", f.name("PRE")},
		{"filter", "INPUT", f.name("IN")},
		{"filter", "FORWARD", f.name("FWD")},
		{"nat", "POSTROUTING", f.name("NAT")},
		{"nat", "PREROUTING", f.dnsNATChain()},
		{"nat", "PREROUTING", f.egressNATChain()},
	}
}

func (f *firewall) jumpsV6() []jump {
	return []jump{
		{"filter", "INPUT", f.name("IN")},
		{"filter", "FORWARD", f.name("FWD")},
	}
}

// rulesV4 is the iptables-restore input that (re)defines our IPv4 chains,
// with the egress rules of the sandboxes in egress. Declaring an existing
// chain under --noflush flushes it first, so the update is atomic per table
// and idempotent.
func (f *firewall) rulesV4(egress []sandboxRules) string {
	var b strings.Builder
	i, pre, in, fwd, nat := f.iface, f.name("PRE"), f.name("IN"), f.name("FWD"), f.name("NAT")
	fmt.Fprintf(&b, "*raw\n:%s - [0:0]\n", pre)
	// Anti-spoofing: the source must route back through the arrival veth.
	fmt.Fprintf(&b, "-A %s -i %s -m rpfilter --invert -j DROP\n", pre, i)
	b.WriteString("COMMIT\n*filter\n")
	fmt.Fprintf(&b, ":%s - [0:0]\n:%s - [0:0]\n:%s - [0:0]\n:%s - [0:0]\n:%s - [0:0]\n", in, fwd, f.dnsInChain(), f.proxyInChain(), f.checkFilterChain())
	f.egressDecls(&b, false, egress, nil)
	// DNS to the forwarder and connections to the egress proxy first (empty
	// unless they run; see dnsRulesV4 and proxyRulesV4).
	fmt.Fprintf(&b, "-A %s -i %s -j %s\n", in, i, f.dnsInChain())
	fmt.Fprintf(&b, "-A %s -i %s -j %s\n", in, i, f.proxyInChain())
	// To the host: only replies to connections the host opened.
	fmt.Fprintf(&b, "-A %s -i %s -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n", in, i)
	fmt.Fprintf(&b, "-A %s -i %s -j DROP\n", in, i)
	// Between sandboxes: nothing.
	fmt.Fprintf(&b, "-A %s -i %s -o %s -j DROP\n", fwd, i, i)
	// Into a sandbox: only replies to its own egress.
	fmt.Fprintf(&b, "-A %s -o %s -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n", fwd, i)
	fmt.Fprintf(&b, "-A %s -o %s -j DROP\n", fwd, i)
	// Out of a sandbox: never to blocked ranges, the subnet or broadcasts.
	blocked := append(append([]netip.Prefix(nil), blockedV4...), f.subnet)
	blocked = append(blocked, f.extra...)
	for _, p := range blocked {
		fmt.Fprintf(&b, "-A %s -i %s -d %s -j DROP\n", fwd, i, p.Masked())
	}
	fmt.Fprintf(&b, "-A %s -i %s -m addrtype --dst-type BROADCAST -j DROP\n", fwd, i)
	fmt.Fprintf(&b, "-A %s -i %s -m addrtype --dst-type MULTICAST -j DROP\n", fwd, i)
	// Each sandbox's own egress rules (see egressfw.go).
	fmt.Fprintf(&b, "-A %s -i %s -j %s\n", fwd, i, f.egressChain())
	// Egress only for veths in the internet device group.
	fmt.Fprintf(&b, "-A %s -i %s -m devgroup --src-group %#x -j ACCEPT\n", fwd, i, InternetGroup)
	fmt.Fprintf(&b, "-A %s -i %s -j DROP\n", fwd, i)
	f.egressBody(&b, false, egress, egress, nil)
	b.WriteString("COMMIT\n*nat\n")
	fmt.Fprintf(&b, ":%s - [0:0]\n:%s - [0:0]\n:%s - [0:0]\n:%s - [0:0]\n", nat, f.dnsNATChain(), f.proxyNATChain(), f.checkNATChain())
	f.egressDecls(&b, true, nil, nil)
	f.egressBody(&b, true, egress, nil, nil)
	fmt.Fprintf(&b, "-A %s -s %s ! -o %s -j MASQUERADE\n", nat, f.subnet, i)
	b.WriteString("COMMIT\n")
	return b.String()
}

// rulesV6 drops every IPv6 packet to or from a sandbox veth (IPv6 is also
// disabled on both veth ends; this is the second layer).
func (f *firewall) rulesV6() string {
	var b strings.Builder
	i, in, fwd := f.iface, f.name("IN"), f.name("FWD")
	fmt.Fprintf(&b, "*filter\n:%s - [0:0]\n:%s - [0:0]\n", in, fwd)
	fmt.Fprintf(&b, "-A %s -i %s -j DROP\n", in, i)
	fmt.Fprintf(&b, "-A %s -i %s -j DROP\n", fwd, i)
	fmt.Fprintf(&b, "-A %s -o %s -j DROP\n", fwd, i)
	b.WriteString("COMMIT\n")
	return b.String()
}

// install (re)creates our chains and the jumps into them, with the egress
// rules of the sandboxes in egress.
func (f *firewall) install(ctx context.Context, egress []sandboxRules) error {
	if err := run(ctx, strings.NewReader(f.rulesV4(egress)), "iptables-restore", "-w", "--noflush"); err != nil {
		return fmt.Errorf("install IPv4 chains: %w", err)
	}
	if err := ensureJumps(ctx, "iptables", f.jumpsV4()); err != nil {
		return err
	}
	if !f.ipv6 {
		return nil
	}
	if err := run(ctx, strings.NewReader(f.rulesV6()), "ip6tables-restore", "-w", "--noflush"); err != nil {
		return fmt.Errorf("install IPv6 chains: %w", err)
	}
	return ensureJumps(ctx, "ip6tables", f.jumpsV6())
}

// uninstall removes the jumps and our chains; missing ones are skipped.
func (f *firewall) uninstall(ctx context.Context) error {
	if err := removeChains(ctx, "iptables", f.jumpsV4()); err != nil {
		return err
	}
	if err := f.removeDNSInChain(ctx); err != nil {
		return err
	}
	if err := f.removeEgressChains(ctx); err != nil {
		return err
	}
	if f.ipv6 {
		return removeChains(ctx, "ip6tables", f.jumpsV6())
	}
	return nil
}

func ensureJumps(ctx context.Context, bin string, jumps []jump) error {
	for _, j := range jumps {
		if run(ctx, nil, bin, "-w", "-t", j.table, "-C", j.builtin, "-j", j.chain) == nil {
			continue
		}
		if err := run(ctx, nil, bin, "-w", "-t", j.table, "-I", j.builtin, "1", "-j", j.chain); err != nil {
			return fmt.Errorf("insert jump %s %s -> %s: %w", j.table, j.builtin, j.chain, err)
		}
	}
	return nil
}

func removeChains(ctx context.Context, bin string, jumps []jump) error {
	for _, j := range jumps {
		// Delete every copy of the jump (a crash may have left two).
		for run(ctx, nil, bin, "-w", "-t", j.table, "-C", j.builtin, "-j", j.chain) == nil {
			if err := run(ctx, nil, bin, "-w", "-t", j.table, "-D", j.builtin, "-j", j.chain); err != nil {
				return fmt.Errorf("delete jump %s %s -> %s: %w", j.table, j.builtin, j.chain, err)
			}
		}
		if run(ctx, nil, bin, "-w", "-t", j.table, "-S", j.chain) != nil {
			continue // chain absent
		}
		if err := run(ctx, nil, bin, "-w", "-t", j.table, "-F", j.chain); err != nil {
			return fmt.Errorf("flush chain %s %s: %w", j.table, j.chain, err)
		}
		if err := run(ctx, nil, bin, "-w", "-t", j.table, "-X", j.chain); err != nil {
			return fmt.Errorf("delete chain %s %s: %w", j.table, j.chain, err)
		}
	}
	return nil
}

// run executes a command, returning its output in the error.
func run(ctx context.Context, stdin *strings.Reader, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// output executes a command and returns its standard output.
func output(ctx context.Context, name string, args ...string) (string, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}
