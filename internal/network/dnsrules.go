package network

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// dnsPort is the port sandboxes send DNS queries to.
const dnsPort = 53

// The DNS chains. DNSIN (filter) is entered from the top of IN for packets
// from sandbox veths; DNS (nat) is jumped to from PREROUTING. Both are
// declared, empty, with the other chains and hold rules only while a
// DNSForwarder runs.
func (f *firewall) dnsInChain() string  { return f.name("DNSIN") }
func (f *firewall) dnsNATChain() string { return f.name("DNS") }

// dnsRulesV4 is the iptables-restore input that (re)defines the DNS chains
// for a forwarder listening on udpPort and tcpPort that allows each sandbox
// rate queries per second with burst; with both ports 0 the chains are left
// empty.
//
//   - nat: a sandbox's first packet to port 53 of any address, from a veth in
//     the internet group, is redirected to the forwarder. REDIRECT rewrites
//     the destination to the arrival veth's address, the sandbox's gateway.
//   - filter: packets to the forwarder's ports are accepted only if they were
//     redirected from port 53 and the veth is (still) in the internet group;
//     every other packet to those ports is dropped before IN's
//     ESTABLISHED,RELATED rule, so revoking internet access also stops DNS
//     flows that conntrack already knows. Before that, a sandbox's datagrams
//     (and new TCP connections) beyond dnsKernelFactor times its rate and
//     burst are dropped, per source address, so that a flood from one
//     sandbox never fills the forwarder's socket, which all of them share.
func (f *firewall) dnsRulesV4(udpPort, tcpPort int, rate float64, burst int) string {
	var b strings.Builder
	i, in, nat := f.iface, f.dnsInChain(), f.dnsNATChain()
	group := fmt.Sprintf("-m devgroup --src-group %#x", InternetGroup)
	limit := fmt.Sprintf("-m hashlimit --hashlimit-mode srcip --hashlimit-above %d/sec --hashlimit-burst %d",
		max(1, int(rate*dnsKernelFactor)), max(1, burst*dnsKernelFactor))
	fmt.Fprintf(&b, "*filter\n:%s - [0:0]\n", in)
	for _, p := range []struct {
		proto, match string
		port         int
	}{{"udp", "", udpPort}, {"tcp", " --syn", tcpPort}} {
		if p.port == 0 {
			continue
		}
		fmt.Fprintf(&b, "-A %s -i %s -p %s -m %s --dport %d%s %s --hashlimit-name %s -j DROP\n",
			in, i, p.proto, p.proto, p.port, p.match, limit, f.name("DNS-"+strings.ToUpper(p.proto)))
		fmt.Fprintf(&b, "-A %s -i %s -p %s -m %s --dport %d -m conntrack --ctstate DNAT --ctorigdstport %d %s -j ACCEPT\n",
			in, i, p.proto, p.proto, p.port, dnsPort, group)
		fmt.Fprintf(&b, "-A %s -i %s -p %s -m %s --dport %d -j DROP\n", in, i, p.proto, p.proto, p.port)
	}
	fmt.Fprintf(&b, "COMMIT\n*nat\n:%s - [0:0]\n", nat)
	for _, p := range []struct {
		proto string
		port  int
	}{{"udp", udpPort}, {"tcp", tcpPort}} {
		if p.port == 0 {
			continue
		}
		fmt.Fprintf(&b, "-A %s -i %s -p %s -m %s --dport %d %s -j REDIRECT --to-ports %d\n",
			nat, i, p.proto, p.proto, dnsPort, group, p.port)
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// installDNS fills the DNS chains for a forwarder on udpPort and tcpPort,
// atomically per table.
func (f *firewall) installDNS(ctx context.Context, udpPort, tcpPort int, rate float64, burst int) error {
	if err := run(ctx, strings.NewReader(f.dnsRulesV4(udpPort, tcpPort, rate, burst)), "iptables-restore", "-w", "--noflush"); err != nil {
		return fmt.Errorf("install DNS redirect: %w", err)
	}
	return nil
}

// clearDNS empties the DNS chains. Chains that are gone (Uninstall ran
// first) are skipped rather than created again.
func (f *firewall) clearDNS(ctx context.Context) error {
	var errs []error
	for _, c := range []struct{ table, chain string }{{"nat", f.dnsNATChain()}, {"filter", f.dnsInChain()}} {
		if run(ctx, nil, "iptables", "-w", "-t", c.table, "-S", c.chain) != nil {
			continue
		}
		if err := run(ctx, nil, "iptables", "-w", "-t", c.table, "-F", c.chain); err != nil {
			errs = append(errs, fmt.Errorf("flush chain %s %s: %w", c.table, c.chain, err))
		}
	}
	return errors.Join(errs...)
}

// removeDNSInChain deletes the DNSIN chain once IN, which jumps to it, is
// gone; a missing chain is skipped.
func (f *firewall) removeDNSInChain(ctx context.Context) error {
	c := f.dnsInChain()
	if run(ctx, nil, "iptables", "-w", "-t", "filter", "-S", c) != nil {
		return nil
	}
	if err := run(ctx, nil, "iptables", "-w", "-t", "filter", "-F", c); err != nil {
		return fmt.Errorf("flush chain filter %s: %w", c, err)
	}
	if err := run(ctx, nil, "iptables", "-w", "-t", "filter", "-X", c); err != nil {
		return fmt.Errorf("delete chain filter %s: %w", c, err)
	}
	return nil
}
