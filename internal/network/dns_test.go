package network

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	// hostResolver plays the host's resolver from /etc/resolv.conf: a
	// private address (in the outside namespace) no sandbox may reach.
	hostResolver = "10.255.255.53"
	answerWait   = 3 * time.Second
)

var fakeAnswer = netip.MustParseAddr("192.0.2.53")

// dnsWorld is an outside namespace with the host's resolver in it and a
// temporary resolv.conf naming that resolver.
func dnsWorld(t *testing.T, cfg Config, f *fakeDNS) (outside, resolvConf string) {
	t.Helper()
	outside = newOutside(t, cfg)
	name := filepath.Base(outside)
	for _, c := range [][]string{
		{"-n", name, "addr", "add", hostResolver + "/32", "dev", "lo"},
		{"route", "add", hostResolver + "/32", "via", internetAddr},
	} {
		if out, err := exec.Command("ip", c...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", c, err, out)
		}
	}
	// Bound to each address, so that answers leave from the address asked.
	for _, a := range []string{hostResolver, internetAddr} {
		serveFakeDNS(t, outside, net.JoinHostPort(a, "53"), f)
	}
	resolvConf = filepath.Join(t.TempDir(), "resolv.conf")
	text := "# written by the test\nsearch example.test\nnameserver " + hostResolver + "\noptions edns0\n"
	if err := os.WriteFile(resolvConf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return outside, resolvConf
}

// startDNS starts a forwarder that is closed when the test ends.
func startDNS(t *testing.T, m *Manager, opts DNSOptions) *DNSForwarder {
	t.Helper()
	d, err := m.StartDNS(context.Background(), opts)
	if err != nil {
		t.Fatalf("StartDNS: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Close(context.Background()); err != nil {
			t.Errorf("close DNS forwarder: %v", err)
		}
	})
	return d
}

func TestDNSForSandboxes(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	cfg := testConfig(t)
	m := newTestManager(t, cfg)
	outside, resolvConf := dnsWorld(t, cfg, &fakeDNS{answer: fakeAnswer})
	d := startDNS(t, m, DNSOptions{ResolvConf: resolvConf})
	if got, want := d.Upstreams(), []netip.AddrPort{netip.MustParseAddrPort(hostResolver + ":53")}; !reflect.DeepEqual(got, want) {
		t.Fatalf("upstreams from resolv.conf = %v, want %v", got, want)
	}
	udpPort, tcpPort := d.Ports()

	on, err := m.Setup(ctx, "dns-on", Options{AllowInternet: true})
	if err != nil {
		t.Fatal(err)
	}
	off, err := m.Setup(ctx, "dns-off", Options{AllowInternet: false})
	if err != nil {
		t.Fatal(err)
	}
	hostTCP := serve(t, "", "tcp4", "0.0.0.0:0").(*net.TCPAddr).Port
	hostUDP := serveFakeDNSOnHost(t)
	at := func(ip string, port int) string { return net.JoinHostPort(ip, strconv.Itoa(port)) }

	tests := []struct {
		name, from, proto, server string
		want                      bool
	}{
		{"UDP to the host's private resolver", on.NetNSPath, "udp", at(hostResolver, 53), true},
		{"TCP to the host's private resolver", on.NetNSPath, "tcp", at(hostResolver, 53), true},
		{"UDP to an address with no server", on.NetNSPath, "udp", at("198.18.0.53", 53), true},
		{"TCP to an address with no server", on.NetNSPath, "tcp", at("198.18.0.53", 53), true},
		{"UDP to the gateway", on.NetNSPath, "udp", at(on.Gateway.String(), 53), true},
		{"no internet: UDP to the host's resolver", off.NetNSPath, "udp", at(hostResolver, 53), false},
		{"no internet: TCP to the host's resolver", off.NetNSPath, "tcp", at(hostResolver, 53), false},
		{"no internet: UDP to a public resolver", off.NetNSPath, "udp", at(internetAddr, 53), false},
		{"no internet: UDP to the gateway", off.NetNSPath, "udp", at(off.Gateway.String(), 53), false},
		{"forwarder's UDP port directly", on.NetNSPath, "udp", at(on.Gateway.String(), udpPort), false},
		{"forwarder's TCP port directly", on.NetNSPath, "tcp", at(on.Gateway.String(), tcpPort), false},
		{"forwarder's UDP port directly, no internet", off.NetNSPath, "udp", at(off.Gateway.String(), udpPort), false},
		{"another host UDP port", on.NetNSPath, "udp", at(on.Gateway.String(), hostUDP), false},
		{"another host TCP port", on.NetNSPath, "tcp", at(on.Gateway.String(), hostTCP), false},
		{"the world to the forwarder's UDP port", outside, "udp", at(hostUplink, udpPort), false},
		{"the world to the forwarder's TCP port", outside, "tcp", at(hostUplink, tcpPort), false},
		{"the world to the forwarder via a gateway", outside, "udp", at(on.Gateway.String(), udpPort), false},
		{"host DNS server on another port (control)", "", "udp", at("127.0.0.1", hostUDP), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			wait := blockedWait
			if tt.want {
				wait = answerWait
			}
			a, err := askOnce(t, tt.from, tt.proto, tt.server, wait)
			switch {
			case tt.want && err != nil:
				t.Fatalf("query to %s/%s: %v, want an answer", tt.server, tt.proto, err)
			case tt.want && a != fakeAnswer:
				t.Fatalf("answer %s, want %s", a, fakeAnswer)
			case !tt.want && err == nil:
				t.Fatalf("query to %s/%s answered (%s), want no answer", tt.server, tt.proto, a)
			}
		})
	}
}

// serveFakeDNSOnHost runs a DNS server on a host port other than the
// forwarder's, which sandboxes must not reach.
func serveFakeDNSOnHost(t *testing.T) int {
	t.Helper()
	return serveFakeDNS(t, "", "0.0.0.0:0", &fakeDNS{answer: fakeAnswer}).(*net.UDPAddr).Port
}

func TestDNSFollowsAllowInternet(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	cfg := testConfig(t)
	m := newTestManager(t, cfg)
	_, resolvConf := dnsWorld(t, cfg, &fakeDNS{answer: fakeAnswer})
	startDNS(t, m, DNSOptions{ResolvConf: resolvConf})
	ep, err := m.Setup(ctx, "dns-toggle", Options{AllowInternet: true})
	if err != nil {
		t.Fatal(err)
	}
	server := net.JoinHostPort(hostResolver, "53")
	// The same sockets throughout, so later queries ride on the flows that
	// conntrack already redirects.
	udp, err := newDNSClient(t, ep.NetNSPath, "udp", server, answerWait)
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := newDNSClient(t, ep.NetNSPath, "tcp", server, answerWait)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		allow bool
		c     *dnsClient
	}{{true, udp}, {true, tcp}, {false, udp}, {true, udp}, {true, tcp}, {false, tcp}}
	for i, s := range steps {
		if err := m.SetAllowInternet(ctx, "dns-toggle", s.allow); err != nil {
			t.Fatal(err)
		}
		wait := blockedWait
		if s.allow {
			wait = answerWait
		}
		_, _, err := s.c.ask(wait)
		if got := err == nil; got != s.allow {
			t.Errorf("step %d (allow %v) %s: answered %v (%v), want %v", i, s.allow, s.c.proto, got, err, s.allow)
		}
	}
	// A new connection gets nothing either.
	if c, err := newDNSClient(t, ep.NetNSPath, "tcp", server, blockedWait); err == nil {
		if _, _, err := c.ask(blockedWait); err == nil {
			t.Errorf("a new TCP connection got DNS after SetAllowInternet(false)")
		}
	}
}

func TestDNSUpstreamFailureAndLimits(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	cfg := testConfig(t)
	m := newTestManager(t, cfg)
	slow := &fakeDNS{answer: fakeAnswer, delay: 300 * time.Millisecond}
	dnsWorld(t, cfg, slow)
	ep, err := m.Setup(ctx, "dns-limits", Options{AllowInternet: true})
	if err != nil {
		t.Fatal(err)
	}
	server := net.JoinHostPort(hostResolver, "53")

	t.Run("dead upstream gives SERVFAIL", func(t *testing.T) {
		dead := netip.MustParseAddrPort(internetAddr + ":5999") // nothing listens
		d := startDNS(t, m, DNSOptions{Upstreams: []netip.AddrPort{dead}, Timeout: 300 * time.Millisecond})
		for _, proto := range []string{"udp", "tcp"} {
			c, err := newDNSClient(t, ep.NetNSPath, proto, server, answerWait)
			if err != nil {
				t.Fatal(err)
			}
			if _, rcode, err := c.ask(answerWait); err != nil || rcode != dnsRcodeFail {
				t.Errorf("%s: rcode %d, %v; want SERVFAIL", proto, rcode, err)
			}
		}
		if err := d.Close(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("in-flight queries are bounded", func(t *testing.T) {
		up := netip.MustParseAddrPort(hostResolver + ":53")
		d := startDNS(t, m, DNSOptions{Upstreams: []netip.AddrPort{up}, MaxInFlight: 2})
		var wg sync.WaitGroup
		var mu sync.Mutex
		answered := 0
		for range 8 {
			wg.Go(func() {
				if _, err := askOnce(t, ep.NetNSPath, "udp", server, time.Second); err == nil {
					mu.Lock()
					answered++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		busy, all := slow.stats()
		if busy > 2 || answered < 2 || all != answered {
			t.Errorf("upstream saw %d queries, at most %d at once; %d answered; want at most 2 at once, all answered ones relayed", all, busy, answered)
		}
		if err := d.Close(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("closed forwarder answers nothing", func(t *testing.T) {
		if _, err := askOnce(t, ep.NetNSPath, "udp", server, blockedWait); err == nil {
			t.Error("a query was answered after Close")
		}
	})
}

func TestDNSWithTwoManagers(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	cfg1, cfg2 := testConfig(t), testConfig(t)
	cfg2.Subnet = netip.MustParsePrefix("10.232.0.0/16")
	m1, m2 := newTestManager(t, cfg1), newTestManager(t, cfg2)
	_, resolvConf := dnsWorld(t, cfg1, &fakeDNS{answer: fakeAnswer})
	d1 := startDNS(t, m1, DNSOptions{ResolvConf: resolvConf})
	d2 := startDNS(t, m2, DNSOptions{ResolvConf: resolvConf})
	if p1, _ := d1.Ports(); func() bool { p2, _ := d2.Ports(); return p1 == p2 }() {
		t.Fatalf("two forwarders share UDP port %d", p1)
	}
	eps := map[string]*Endpoint{}
	for i, m := range []*Manager{m1, m2} {
		for _, allow := range []bool{true, false} {
			id := fmt.Sprintf("m%d-%v", i+1, allow)
			ep, err := m.Setup(ctx, id, Options{AllowInternet: allow})
			if err != nil {
				t.Fatal(err)
			}
			eps[id] = ep
		}
	}
	for id, ep := range eps {
		for _, proto := range []string{"udp", "tcp"} {
			t.Run(id+"/"+proto, func(t *testing.T) {
				t.Parallel()
				want := ep.AllowInternet
				wait := blockedWait
				if want {
					wait = answerWait
				}
				_, err := askOnce(t, ep.NetNSPath, proto, net.JoinHostPort(hostResolver, "53"), wait)
				if got := err == nil; got != want {
					t.Errorf("answered %v (%v), want %v", got, err, want)
				}
			})
		}
	}
}

func TestDNSCyclesLeaveRules(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	cfg := testConfig(t)
	_, resolvConf := dnsWorld(t, cfg, &fakeDNS{answer: fakeAnswer})
	pristine := snapshot(t, cfg)
	m, err := NewManager(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	installed := snapshot(t, cfg)
	d, err := m.StartDNS(ctx, DNSOptions{ResolvConf: resolvConf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // after a failure; all idempotent
		d.Close(ctx)
		m.Reconcile(ctx, func(string) bool { return false })
		m.Uninstall(ctx)
	})
	serving := snapshot(t, cfg)
	udpPort, tcpPort := d.Ports()
	for _, want := range []string{
		fmt.Sprintf("--dport 53 -m devgroup --src-group %#x -j REDIRECT --to-ports %d", InternetGroup, udpPort),
		fmt.Sprintf("--dport 53 -m devgroup --src-group %#x -j REDIRECT --to-ports %d", InternetGroup, tcpPort),
		fmt.Sprintf("--dport %d -m hashlimit --hashlimit-above %d/sec --hashlimit-burst %d --hashlimit-mode srcip --hashlimit-name %s-DNS-UDP -j DROP",
			udpPort, DefaultDNSRate*dnsKernelFactor, DefaultDNSBurst*dnsKernelFactor, cfg.ChainPrefix),
		fmt.Sprintf("--dport %d --tcp-flags FIN,SYN,RST,ACK SYN -m hashlimit --hashlimit-above %d/sec --hashlimit-burst %d --hashlimit-mode srcip --hashlimit-name %s-DNS-TCP -j DROP",
			tcpPort, DefaultDNSRate*dnsKernelFactor, DefaultDNSBurst*dnsKernelFactor, cfg.ChainPrefix),
	} {
		if countRules(serving.rules, want) != 1 {
			t.Errorf("no rule with %q in\n%s", want, serving.rules)
		}
	}
	if n := countRules(serving.rules, cfg.ChainPrefix+"-DNS") - countRules(installed.rules, cfg.ChainPrefix+"-DNS"); n != 8 {
		t.Errorf("StartDNS added %d rules to the DNS chains, want 8", n)
	}
	for i := range 50 {
		id := fmt.Sprintf("dnscycle%d", i)
		ep, err := m.Setup(ctx, id, Options{AllowInternet: i%2 == 0})
		if err != nil {
			t.Fatalf("Setup %s: %v", id, err)
		}
		if i%10 == 0 {
			if _, err := askOnce(t, ep.NetNSPath, "udp", net.JoinHostPort(hostResolver, "53"), answerWait); err != nil {
				t.Fatalf("cycle %d: %v", i, err)
			}
		}
		if err := m.Teardown(ctx, id); err != nil {
			t.Fatalf("Teardown %s: %v", id, err)
		}
	}
	if after := snapshot(t, cfg); !reflect.DeepEqual(after, serving) {
		t.Fatalf("after 50 cycles: %v, rules equal: %v; want %v", after, after.rules == serving.rules, serving)
	}
	for range 2 { // idempotent
		if err := d.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if after := snapshot(t, cfg); after.rules != installed.rules {
		t.Fatalf("Close left DNS rules:\nbefore:\n%s\nafter:\n%s", installed.rules, after.rules)
	}
	if err := m.Uninstall(ctx); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t, cfg); after.rules != pristine.rules {
		t.Fatalf("Uninstall left rules:\nbefore:\n%s\nafter:\n%s", pristine.rules, after.rules)
	}
	if strings.Contains(iptablesRules(t), cfg.ChainPrefix) {
		t.Fatalf("rules still mention %s", cfg.ChainPrefix)
	}
}
