package network

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestEgressFailsClosedWithoutProxy: with no proxy running, connections of a
// sandbox with domain rules are refused, not let through.
func TestEgressFailsClosedWithoutProxy(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	cfg := testConfig(t)
	m := newTestManager(t, cfg)
	newInternet(t, cfg)
	ep, err := m.Setup(ctx, "closed", Options{AllowInternet: true,
		Egress: mustEgress(t, []string{"allowed.test"}, []string{"0.0.0.0/0"})})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ask(ep.NetNSPath, allowedIP, "allowed.test", true, blockedWait); err == nil {
		got.conn.Close()
		t.Fatal("without a proxy a connection got out")
	}
	px := startEgress(t, m)
	got, err := ask(ep.NetNSPath, allowedIP, "allowed.test", true, 2*time.Second)
	if err != nil {
		t.Fatalf("with the proxy: %v", err)
	}
	got.conn.Close()
	if err := px.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := ask(ep.NetNSPath, allowedIP, "allowed.test", true, blockedWait); err == nil {
		got.conn.Close()
		t.Fatal("after the proxy closed a connection got out")
	}
}

// TestEgressLeavesNothing: rules, the proxy and their chains go with the
// sandbox and the Manager.
func TestEgressLeavesNothing(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	cfg := testConfig(t)
	before := snapshot(t, cfg)
	m, err := NewManager(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	px, err := m.StartEgressProxy(ctx, EgressProxyOptions{Upstreams: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:53")}})
	if err != nil {
		t.Fatal(err)
	}
	running := snapshot(t, cfg)
	for i, id := range []string{"leak-a", "leak-b"} {
		e := mustEgress(t, []string{"example.test", "1.2.3.4"}, []string{"0.0.0.0/0"})
		if i == 1 {
			e = mustEgress(t, nil, []string{"5.6.7.8"})
		}
		if _, err := m.Setup(ctx, id, Options{AllowInternet: true, Egress: e}); err != nil {
			t.Fatal(err)
		}
	}
	if rules := iptablesRules(t); countRules(rules, cfg.ChainPrefix+"-S") == 0 {
		t.Fatalf("no per-sandbox rules installed:\n%s", rules)
	}
	for _, id := range []string{"leak-a", "leak-b"} {
		if err := m.Teardown(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if after := snapshot(t, cfg); after.rules != running.rules {
		t.Errorf("teardown left rules:\nbefore %s\nafter  %s", running.rules, after.rules)
	}
	if err := px.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Uninstall(ctx); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t, cfg); after.rules != before.rules || after.String() != before.String() {
		t.Errorf("host state changed:\nbefore %s\n%s\nafter  %s\n%s", before, before.rules, after, after.rules)
	}
}

// echoLine writes a line on an echo connection and reads it back.
func echoLine(c net.Conn, timeout time.Duration) error {
	c.SetDeadline(time.Now().Add(timeout))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	buf := make([]byte, 5)
	_, err := c.Read(buf)
	return err
}
