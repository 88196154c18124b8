package network

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The ports whose TCP traffic carries a name the egress proxy can read: the
// HTTP Host header on 80, the TLS server name on 443.
const (
	httpPort  = 80
	httpsPort = 443
)

// The egress chains. EGR (filter) is entered from FWD for every packet a
// sandbox sends towards the internet, after the ranges no sandbox may reach
// are dropped and before the device-group accept; it jumps to one chain per
// sandbox with rules, <prefix>-S<slot>. EGRNAT (nat, from PREROUTING) sends
// the port 80 and 443 connections of sandboxes with domain rules to PX, which
// redirects them to the egress proxy while one runs and is empty otherwise
// (they are then forwarded, and the sandbox's deny rules refuse them). PXIN
// (filter, entered from the top of IN) lets exactly those redirected
// connections reach the proxy.
func (f *firewall) egressChain() string    { return f.name("EGR") }
func (f *firewall) egressNATChain() string { return f.name("EGRNAT") }
func (f *firewall) proxyNATChain() string  { return f.name("PX") }
func (f *firewall) proxyInChain() string   { return f.name("PXIN") }

// The egress checker's chains (see egressChecker). EQ (nat) takes the
// connections EGRNAT sends it: while a checker runs, it queues each new one
// for the checker, which sends it on the kernel path or to PX; otherwise it
// sends them all to PX. EC (filter) takes the packets of kernel-path
// connections from their sandbox's chain: it queues the data of those whose
// name is not read yet, and forwards or resets the decided ones.
func (f *firewall) checkNATChain() string    { return f.name("EQ") }
func (f *firewall) checkFilterChain() string { return f.name("EC") }

// sandboxChainTag starts the name of every per-sandbox chain after the
// prefix; no other chain of ours starts so.
const sandboxChainTag = "S"

// sandboxChain names the chain of the sandbox in slot: the slot in base 36
// keeps the name within iptables' 28 bytes for every prefix and subnet.
func (f *firewall) sandboxChain(slot int) string {
	return f.name(sandboxChainTag + strings.ToUpper(strconv.FormatInt(int64(slot), 36)))
}

// sandboxRules is one sandbox's egress rules as the firewall needs them.
type sandboxRules struct {
	veth   string
	slot   int
	egress *Egress
}

// egressDecls declares the filter or nat egress chains (declaring flushes),
// for the tables' sections of an iptables-restore input: the dispatch chain
// always, the chains of fill (to be filled) and of drop (to be deleted).
func (f *firewall) egressDecls(b *strings.Builder, nat bool, fill []sandboxRules, drop []int) {
	if nat {
		fmt.Fprintf(b, ":%s - [0:0]\n", f.egressNATChain())
		return
	}
	fmt.Fprintf(b, ":%s - [0:0]\n", f.egressChain())
	for _, s := range fill {
		fmt.Fprintf(b, ":%s - [0:0]\n", f.sandboxChain(s.slot))
	}
	for _, slot := range drop {
		fmt.Fprintf(b, ":%s - [0:0]\n", f.sandboxChain(slot))
	}
}

// egressBody writes the rules of the filter or nat egress chains: dispatch
// for every sandbox in all, the per-sandbox chains of fill, and the deletion
// of the chains of drop (after the dispatch chain stopped naming them).
func (f *firewall) egressBody(b *strings.Builder, nat bool, all, fill []sandboxRules, drop []int) {
	if nat {
		for _, s := range all {
			if s.egress.hasDomains() {
				fmt.Fprintf(b, "-A %s -i %s -p tcp -m multiport --dports %d,%d -j %s\n",
					f.egressNATChain(), s.veth, httpPort, httpsPort, f.checkNATChain())
			}
		}
		return
	}
	for _, s := range all {
		if !s.egress.empty() {
			fmt.Fprintf(b, "-A %s -i %s -j %s\n", f.egressChain(), s.veth, f.sandboxChain(s.slot))
		}
	}
	for _, s := range fill {
		c := f.sandboxChain(s.slot)
		if s.egress.hasDomains() {
			fmt.Fprintf(b, "-A %s -p tcp -m connmark ! --mark 0/%#x -j %s\n", c, checkMask, f.checkFilterChain())
		}
		for _, p := range s.egress.AllowCIDRs {
			fmt.Fprintf(b, "-A %s -d %s -j RETURN\n", c, p)
		}
		for _, p := range s.egress.DenyCIDRs {
			fmt.Fprintf(b, "-A %s -p tcp -d %s -j REJECT --reject-with tcp-reset\n", c, p)
			fmt.Fprintf(b, "-A %s -d %s -j REJECT --reject-with icmp-admin-prohibited\n", c, p)
		}
	}
	for _, slot := range drop {
		fmt.Fprintf(b, "-X %s\n", f.sandboxChain(slot))
	}
}

// egressRulesV4 is the iptables-restore input that replaces the dispatch
// chains with all, (re)fills the chains of fill and deletes those of drop,
// atomically per table.
func (f *firewall) egressRulesV4(all, fill []sandboxRules, drop []int) string {
	var b strings.Builder
	b.WriteString("*filter\n")
	f.egressDecls(&b, false, fill, drop)
	f.egressBody(&b, false, all, fill, drop)
	b.WriteString("COMMIT\n*nat\n")
	f.egressDecls(&b, true, nil, nil)
	f.egressBody(&b, true, all, nil, nil)
	b.WriteString("COMMIT\n")
	return b.String()
}

// applyEgress installs egressRulesV4(all, fill, drop).
func (f *firewall) applyEgress(ctx context.Context, all, fill []sandboxRules, drop []int) error {
	if err := run(ctx, strings.NewReader(f.egressRulesV4(all, fill, drop)), "iptables-restore", "-w", "--noflush"); err != nil {
		return fmt.Errorf("install egress rules: %w", err)
	}
	return nil
}

// proxyRulesV4 is the iptables-restore input that points PX at an egress
// proxy on port (0: empties PX and PXIN, EQ and EC) and, with queue >= 0,
// fills EQ and EC for an egress checker on that netfilter queue. Redirected
// and checked connections are accepted only while the veth is in the
// internet group, so revoking internet access also stops the ones conntrack
// already knows.
func (f *firewall) proxyRulesV4(port, queue int) string {
	var b strings.Builder
	in, nat, eq, ec := f.proxyInChain(), f.proxyNATChain(), f.checkNATChain(), f.checkFilterChain()
	group := fmt.Sprintf("-m devgroup --src-group %#x", InternetGroup)
	fmt.Fprintf(&b, "*filter\n:%s - [0:0]\n:%s - [0:0]\n", in, ec)
	if port != 0 {
		for _, orig := range []int{httpPort, httpsPort} {
			fmt.Fprintf(&b, "-A %s -i %s -p tcp -m tcp --dport %d -m conntrack --ctstate DNAT --ctorigdstport %d %s -j ACCEPT\n",
				in, f.iface, port, orig, group)
		}
		fmt.Fprintf(&b, "-A %s -i %s -p tcp -m tcp --dport %d -j DROP\n", in, f.iface, port)
	}
	if port != 0 && queue >= 0 {
		fmt.Fprintf(&b, "-A %s -m connmark --mark %#x/%#x %s -j ACCEPT\n", ec, checkAllowed, checkMask, group)
		fmt.Fprintf(&b, "-A %s -p tcp -m connmark --mark %#x/%#x -j REJECT --reject-with tcp-reset\n", ec, checkRefused, checkMask)
		fmt.Fprintf(&b, "-A %s -m mark --mark %#x/%#x %s -j ACCEPT\n", ec, checkPending, checkMask, group)
		for _, m := range []struct {
			mark uint32
			then string
		}{{checkAllowed, group + " -j ACCEPT"}, {checkRefused, "-p tcp -j REJECT --reject-with tcp-reset"}} {
			fmt.Fprintf(&b, "-A %s -m mark --mark %#x/%#x -j CONNMARK --set-xmark %#x/%#x\n", ec, m.mark, checkMask, m.mark, checkMask)
			fmt.Fprintf(&b, "-A %s -m mark --mark %#x/%#x %s\n", ec, m.mark, checkMask, m.then)
		}
		fmt.Fprintf(&b, "-A %s -m connmark --mark %#x/%#x %s -j NFQUEUE --queue-num %d\n", ec, checkPending, checkMask, group, queue)
		fmt.Fprintf(&b, "-A %s -j DROP\n", ec)
	}
	fmt.Fprintf(&b, "COMMIT\n*nat\n:%s - [0:0]\n:%s - [0:0]\n", nat, eq)
	if port != 0 {
		fmt.Fprintf(&b, "-A %s -p tcp -j REDIRECT --to-ports %d\n", nat, port)
		if queue >= 0 {
			for _, m := range []uint32{checkPending, checkAllowed} {
				fmt.Fprintf(&b, "-A %s -m mark --mark %#x/%#x -j CONNMARK --set-xmark %#x/%#x\n", eq, m, checkMask, m, checkMask)
				fmt.Fprintf(&b, "-A %s -m mark --mark %#x/%#x -j RETURN\n", eq, m, checkMask)
			}
			fmt.Fprintf(&b, "-A %s -m mark --mark %#x/%#x -j %s\n", eq, checkRefused, checkMask, nat)
			fmt.Fprintf(&b, "-A %s -j NFQUEUE --queue-num %d\n", eq, queue)
		} else {
			fmt.Fprintf(&b, "-A %s -j %s\n", eq, nat)
		}
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// installProxy points the redirect at an egress proxy listening on port,
// with an egress checker on queue (-1: none).
func (f *firewall) installProxy(ctx context.Context, port, queue int) error {
	if err := run(ctx, strings.NewReader(f.proxyRulesV4(port, queue)), "iptables-restore", "-w", "--noflush"); err != nil {
		return fmt.Errorf("install egress proxy redirect: %w", err)
	}
	return nil
}

// clearProxy empties PX and PXIN, EQ and EC; chains that are gone (Uninstall ran first)
// are skipped rather than created again.
func (f *firewall) clearProxy(ctx context.Context) error {
	var errs []error
	for _, c := range []struct{ table, chain string }{{"nat", f.checkNATChain()}, {"nat", f.proxyNATChain()},
		{"filter", f.checkFilterChain()}, {"filter", f.proxyInChain()}} {
		if run(ctx, nil, "iptables", "-w", "-t", c.table, "-S", c.chain) != nil {
			continue
		}
		if err := run(ctx, nil, "iptables", "-w", "-t", c.table, "-F", c.chain); err != nil {
			errs = append(errs, fmt.Errorf("flush chain %s %s: %w", c.table, c.chain, err))
		}
	}
	return errors.Join(errs...)
}

// removeEgressChains deletes the egress chains that built-in chains do not
// jump to (EGR, PXIN, PX and every per-sandbox chain) once IN, FWD and
// EGRNAT, which name them, are gone; missing chains are skipped.
func (f *firewall) removeEgressChains(ctx context.Context) error {
	var errs []error
	for _, table := range []string{"filter", "nat"} {
		out, err := output(ctx, "iptables", "-w", "-t", table, "-S")
		if err != nil {
			return fmt.Errorf("list %s chains: %w", table, err)
		}
		var ours []string
		for _, l := range strings.Split(out, "\n") {
			name, ok := strings.CutPrefix(l, "-N ")
			if ok && f.isEgressChain(strings.TrimSpace(name)) {
				ours = append(ours, strings.TrimSpace(name))
			}
		}
		for _, c := range ours { // flush all first: EGR names the others
			if err := run(ctx, nil, "iptables", "-w", "-t", table, "-F", c); err != nil {
				errs = append(errs, fmt.Errorf("flush chain %s %s: %w", table, c, err))
			}
		}
		for _, c := range ours {
			if err := run(ctx, nil, "iptables", "-w", "-t", table, "-X", c); err != nil {
				errs = append(errs, fmt.Errorf("delete chain %s %s: %w", table, c, err))
			}
		}
	}
	return errors.Join(errs...)
}

// isEgressChain reports whether chain is one removeEgressChains deletes.
func (f *firewall) isEgressChain(chain string) bool {
	switch chain {
	case f.egressChain(), f.proxyInChain(), f.proxyNATChain(), f.checkNATChain(), f.checkFilterChain():
		return true
	}
	rest, ok := strings.CutPrefix(chain, f.name(sandboxChainTag))
	if !ok || rest == "" {
		return false
	}
	for _, c := range rest {
		if (c < '0' || c > '9') && (c < 'A' || c > 'Z') {
			return false
		}
	}
	return true
}
