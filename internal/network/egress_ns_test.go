package network

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestEgressRulesWithRealTraffic attacks each sandbox's rules from inside
// its namespace: by address, by name over HTTPS (server name) and HTTP
// (Host), with a made-up name for a refused address, on other ports, with a
// raw socket, and through DNS.
func TestEgressRulesWithRealTraffic(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	cfg := testConfig(t)
	m := newTestManager(t, cfg)
	outside := newInternet(t, cfg)
	px := startEgress(t, m)

	// Domains only (and one address), everything else denied.
	dom, err := m.Setup(ctx, "dom", Options{AllowInternet: true,
		Egress: mustEgress(t, []string{"allowed.test", "*.allowed.test", cidrIP}, []string{"0.0.0.0/0"})})
	if err != nil {
		t.Fatal(err)
	}
	// One address denied, the rest open.
	part, err := m.Setup(ctx, "part", Options{AllowInternet: true, Egress: mustEgress(t, nil, []string{deniedIP})})
	if err != nil {
		t.Fatal(err)
	}
	// Allow beats deny: the denied range holds an allowed address.
	beat, err := m.Setup(ctx, "beat", Options{AllowInternet: true,
		Egress: mustEgress(t, []string{deniedIP}, []string{"198.18.1.0/24"})})
	if err != nil {
		t.Fatal(err)
	}
	// Without internet access rules open nothing.
	off, err := m.Setup(ctx, "off", Options{Egress: mustEgress(t, []string{allowedIP, "allowed.test"}, []string{"0.0.0.0/0"})})
	if err != nil {
		t.Fatal(err)
	}

	type tc struct {
		name      string
		ns        string
		ip, host  string
		tls       bool
		want      bool
		wantLocal string // the address the server must have been reached at
	}
	cases := []tc{
		{"allowed name over HTTPS", dom.NetNSPath, allowedIP, "allowed.test", true, true, allowedIP},
		{"allowed name over HTTP", dom.NetNSPath, allowedIP, "allowed.test", false, true, allowedIP},
		{"wildcard name over HTTPS", dom.NetNSPath, allowedIP, "www.allowed.test", true, true, allowedIP},
		{"names are case-insensitive", dom.NetNSPath, allowedIP, "Allowed.TEST", false, true, allowedIP},
		{"denied name over HTTPS", dom.NetNSPath, deniedIP, "denied.test", true, false, ""},
		{"denied name over HTTP", dom.NetNSPath, deniedIP, "denied.test", false, false, ""},
		{"no server name to an unlisted address", dom.NetNSPath, deniedIP, "", true, false, ""},
		{"an address as the Host header", dom.NetNSPath, deniedIP, deniedIP, false, false, ""},
		{"allowed address with any name", dom.NetNSPath, cidrIP, "whatever.example", false, true, cidrIP},
		// A made-up name does not take the connection where it was sent:
		// the proxy goes to the name's own address.
		{"allowed name sent to a denied address (HTTPS)", dom.NetNSPath, deniedIP, "allowed.test", true, true, allowedIP},
		{"allowed name sent to a denied address (HTTP)", dom.NetNSPath, deniedIP, "allowed.test", false, true, allowedIP},
		{"partial deny: denied address", part.NetNSPath, deniedIP, "allowed.test", true, false, ""},
		{"partial deny: other address", part.NetNSPath, allowedIP, "anything.test", true, true, allowedIP},
		{"allow beats deny: allowed address", beat.NetNSPath, deniedIP, "x", false, true, deniedIP},
		{"allow beats deny: rest of the range", beat.NetNSPath, allowedIP, "allowed.test", false, false, ""},
		{"no internet: allowed name", off.NetNSPath, allowedIP, "allowed.test", true, false, ""},
	}
	t.Run("connections", func(t *testing.T) {
		for _, tt := range cases {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				got, err := ask(tt.ns, tt.ip, tt.host, tt.tls, 2*time.Second)
				if got != nil {
					defer got.conn.Close()
				}
				switch {
				case tt.want && err != nil:
					t.Fatalf("%s %s: %v, want an answer", tt.ip, tt.host, err)
				case !tt.want && err == nil:
					t.Fatalf("%s %s reached the server (it saw %q at %s), want it refused", tt.ip, tt.host, got.host, got.local)
				case tt.want && got.local != tt.wantLocal:
					t.Fatalf("server reached at %s, want %s", got.local, tt.wantLocal)
				case tt.want && !strings.EqualFold(got.host, tt.host):
					t.Fatalf("server saw name %q, want %q", got.host, tt.host)
				case tt.want:
					if err := got.echo(2 * time.Second); err != nil {
						t.Fatalf("echo through the connection: %v", err)
					}
				}
			})
		}
	})

	t.Run("other ports see only the CIDR rules", func(t *testing.T) {
		if c, seen, err := dial(dom.NetNSPath, net.JoinHostPort(allowedIP, echoPort), blockedWait); err == nil {
			c.Close()
			t.Fatalf("port %s of an allowed name's address reached (server saw %s)", echoPort, seen)
		}
		c, _, err := dial(dom.NetNSPath, net.JoinHostPort(cidrIP, echoPort), 2*time.Second)
		if err != nil {
			t.Fatalf("allowed address on port %s: %v", echoPort, err)
		}
		c.Close()
		if c, seen, err := dial(part.NetNSPath, net.JoinHostPort(deniedIP, echoPort), blockedWait); err == nil {
			c.Close()
			t.Fatalf("denied address reached on port %s (server saw %s)", echoPort, seen)
		}
	})

	t.Run("a raw socket does not get past the rules", func(t *testing.T) {
		got := listenUDP(t, outside, "0.0.0.0:9999")
		for _, ep := range []*Endpoint{dom, part} {
			if err := sendRawUDP(ep.NetNSPath, ep.Address, netip.MustParseAddr(deniedIP), 9999, "raw "+ep.SandboxID); err != nil {
				t.Fatalf("send raw datagram: %v", err)
			}
		}
		if err := sendRawUDP(part.NetNSPath, part.Address, netip.MustParseAddr(allowedIP), 9999, "control"); err != nil {
			t.Fatal(err)
		}
		for {
			select {
			case msg := <-got:
				if msg != "control" {
					t.Fatalf("a raw datagram to a denied address arrived: %q", msg)
				}
				return
			case <-time.After(2 * time.Second):
				t.Fatal("the allowed raw datagram did not arrive")
			}
		}
	})

	t.Run("DNS answers follow the rules", func(t *testing.T) {
		for _, q := range []struct {
			ns, name string
			want     string // address, or "" for REFUSED
		}{
			{dom.NetNSPath, "allowed.test", allowedIP},
			{dom.NetNSPath, "www.allowed.test", allowedIP},
			{dom.NetNSPath, "denied.test", ""},
			{dom.NetNSPath, "cidr.test", ""}, // its address is allowed, not its name
			{part.NetNSPath, "denied.test", deniedIP},
		} {
			a, rcode, err := askName(t, q.ns, q.name)
			switch {
			case err != nil:
				t.Errorf("%s: %v", q.name, err)
			case q.want == "" && rcode != dnsRcodeRefused:
				t.Errorf("%s: answered %s (rcode %d), want REFUSED", q.name, a, rcode)
			case q.want != "" && a.String() != q.want:
				t.Errorf("%s: answered %s (rcode %d), want %s", q.name, a, rcode, q.want)
			}
		}
	})

	if st := px.Stats(); st.Proxied == 0 || st.Refused == 0 {
		t.Errorf("proxy stats %+v: want both proxied and refused connections", st)
	}
}

// TestEgressRulesChangeAtOnce replaces a running sandbox's rules and checks
// that established connections, direct and proxied, follow at once, and that
// the rules survive a restart of the Manager.
func TestEgressRulesChangeAtOnce(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	cfg := testConfig(t)
	m := newTestManager(t, cfg)
	newInternet(t, cfg)
	px := startEgress(t, m)
	ep, err := m.Setup(ctx, "change", Options{AllowInternet: true})
	if err != nil {
		t.Fatal(err)
	}

	direct, _, err := dial(ep.NetNSPath, net.JoinHostPort(deniedIP, echoPort), 2*time.Second)
	if err != nil {
		t.Fatalf("no rules yet: %v", err)
	}
	defer direct.Close()
	if err := m.SetOptions(ctx, "change", Options{AllowInternet: true, Egress: mustEgress(t, nil, []string{deniedIP})}); err != nil {
		t.Fatal(err)
	}
	if err := echoLine(direct, blockedWait); err == nil {
		t.Fatal("an established connection to a newly denied address kept working")
	}
	if c, _, err := dial(ep.NetNSPath, net.JoinHostPort(deniedIP, echoPort), blockedWait); err == nil {
		c.Close()
		t.Fatal("a new connection to a denied address got through")
	}

	// Domains: an allowed HTTPS connection goes through the proxy...
	if err := m.SetOptions(ctx, "change", Options{AllowInternet: true,
		Egress: mustEgress(t, []string{"allowed.test"}, []string{"0.0.0.0/0"})}); err != nil {
		t.Fatal(err)
	}
	kept, err := ask(ep.NetNSPath, allowedIP, "allowed.test", true, 2*time.Second)
	if err != nil {
		t.Fatalf("allowed name: %v", err)
	}
	defer kept.conn.Close()
	// ... and stops when its name is no longer allowed.
	if err := m.SetOptions(ctx, "change", Options{AllowInternet: true,
		Egress: mustEgress(t, []string{"denied.test"}, []string{"0.0.0.0/0"})}); err != nil {
		t.Fatal(err)
	}
	if err := kept.echo(blockedWait); err == nil {
		t.Fatal("a proxied connection whose name is no longer allowed kept working")
	}
	if st := px.Stats(); st.Closed == 0 {
		t.Errorf("proxy stats %+v: want a connection closed by the change", st)
	}
	if _, err := ask(ep.NetNSPath, deniedIP, "denied.test", true, 2*time.Second); err != nil {
		t.Fatalf("newly allowed name: %v", err)
	}
	if got, _ := m.Get("change"); got == nil || !got.Egress.equal(mustEgress(t, []string{"denied.test"}, []string{"0.0.0.0/0"})) {
		t.Fatalf("Get = %+v, want the new rules", got)
	}

	// A restarted Manager installs the recorded rules with its chains.
	m2 := newTestManager(t, cfg)
	if got, _ := m2.Get("change"); got == nil || !got.Egress.hasDomains() {
		t.Fatalf("after restart Get = %+v, want the rules", got)
	}
	if c, _, err := dial(ep.NetNSPath, net.JoinHostPort(allowedIP, echoPort), blockedWait); err == nil {
		c.Close()
		t.Fatal("after a restart an address outside the rules was reached")
	}

	// No rules: everything open again.
	if err := m2.SetOptions(ctx, "change", Options{AllowInternet: true}); err != nil {
		t.Fatal(err)
	}
	c, _, err := dial(ep.NetNSPath, net.JoinHostPort(deniedIP, echoPort), 2*time.Second)
	if err != nil {
		t.Fatalf("rules removed: %v", err)
	}
	c.Close()
	if rules := iptablesRules(t); countRules(rules, cfg.ChainPrefix+"-S") != 0 {
		t.Errorf("a sandbox without rules still has a chain:\n%s", rules)
	}
}

// TestEgressKernelPath attacks the egress checker's kernel path: connections
// to an address the sandbox's DNS answers gave it for an allowed name are
// forwarded by the kernel once their first packets name an allowed name, and
// reset when they name another, name nothing, or the rules change.
func TestEgressKernelPath(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	cfg := testConfig(t)
	m := newTestManager(t, cfg)
	newInternet(t, cfg)
	px := startEgress(t, m)
	if px.checker == nil {
		t.Fatal("the egress checker did not start: no netfilter queue")
	}
	dom, err := m.Setup(ctx, "kpath", Options{AllowInternet: true,
		Egress: mustEgress(t, []string{"allowed.test", "*.allowed.test"}, []string{"0.0.0.0/0"})})
	if err != nil {
		t.Fatal(err)
	}
	if a, _, err := askName(t, dom.NetNSPath, "allowed.test"); err != nil || a.String() != allowedIP {
		t.Fatalf("allowed.test answered %s, %v", a, err)
	}

	cases := []struct {
		name        string
		ip, host    string
		tls, split  bool
		want        bool
		wantChecked bool // taken by the kernel path, not carried by the proxy
	}{
		{"allowed name over HTTPS", allowedIP, "allowed.test", true, false, true, true},
		{"allowed name over HTTP", allowedIP, "allowed.test", false, false, true, true},
		{"wildcard name in a ClientHello of two segments", allowedIP, "www.allowed.test", true, true, true, true},
		{"request head of two segments", allowedIP, "allowed.test", false, true, true, true},
		{"denied name to an answered address (HTTPS)", allowedIP, "denied.test", true, false, false, true},
		{"denied name to an answered address (HTTP)", allowedIP, "denied.test", false, false, false, true},
		{"no server name to an answered address", allowedIP, "", true, false, false, true},
		{"an address as the Host header", allowedIP, allowedIP, false, false, false, true},
		// An address the sandbox was not given goes to the proxy, which
		// sends an allowed name to the name's own address.
		{"allowed name to an address never answered", deniedIP, "allowed.test", true, false, true, false},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			before := px.Stats()
			got, err := askSplit(dom.NetNSPath, tt.ip, tt.host, tt.tls, tt.split, 2*time.Second)
			if got != nil {
				defer got.conn.Close()
			}
			switch {
			case tt.want && err != nil:
				t.Fatalf("%s %s: %v, want an answer", tt.ip, tt.host, err)
			case !tt.want && err == nil:
				t.Fatalf("%s %s reached the server (it saw %q at %s), want it refused", tt.ip, tt.host, got.host, got.local)
			case tt.want && (got.local != allowedIP || !strings.EqualFold(got.host, tt.host)):
				t.Fatalf("server saw %q at %s, want %q at %s", got.host, got.local, tt.host, allowedIP)
			case tt.want:
				if err := got.echo(2 * time.Second); err != nil {
					t.Fatalf("echo through the connection: %v", err)
				}
			}
			after := px.Stats()
			checked, proxied := after.Checked > before.Checked, after.Proxied > before.Proxied
			if tt.want && (checked != tt.wantChecked || proxied == tt.wantChecked) {
				t.Errorf("stats %+v then %+v: want the kernel path %v", before, after, tt.wantChecked)
			}
			if !tt.want && tt.wantChecked && after.Refused == before.Refused {
				t.Errorf("stats %+v then %+v: want a refusal by the checker", before, after)
			}
		})
	}

	t.Run("data right after the head is not refused", func(t *testing.T) {
		for i := 0; i < 5; i++ {
			var c net.Conn
			if err := inNetNS(dom.NetNSPath, func() (err error) {
				c, err = net.DialTimeout("tcp4", net.JoinHostPort(allowedIP, "80"), 2*time.Second)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(2 * time.Second))
			// Two writes, so two segments: the second may reach the queue
			// before the first is released.
			if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			if _, err := io.WriteString(c, "ping\n"); err != nil {
				t.Fatal(err)
			}
			r := bufio.NewReader(c)
			for _, want := range []string{"host=allowed.test", "ping"} {
				line, err := r.ReadString('\n')
				if err != nil || !strings.HasPrefix(line, want) {
					t.Fatalf("read %q, %v; want a line starting %q", line, err, want)
				}
			}
		}
	})

	t.Run("a rule change cuts a kernel-path connection", func(t *testing.T) {
		kept, err := ask(dom.NetNSPath, allowedIP, "allowed.test", true, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer kept.conn.Close()
		if err := kept.echo(2 * time.Second); err != nil {
			t.Fatal(err)
		}
		if err := m.SetOptions(ctx, "kpath", Options{AllowInternet: true,
			Egress: mustEgress(t, []string{"denied.test"}, []string{"0.0.0.0/0"})}); err != nil {
			t.Fatal(err)
		}
		if err := kept.echo(blockedWait); err == nil {
			t.Fatal("a kernel-path connection whose name is no longer allowed kept working")
		}
		// The old answer no longer opens the kernel path.
		if got, err := ask(dom.NetNSPath, allowedIP, "allowed.test", true, 2*time.Second); err == nil {
			got.conn.Close()
			t.Fatalf("after the change allowed.test reached the server at %s", got.local)
		}
	})
}
