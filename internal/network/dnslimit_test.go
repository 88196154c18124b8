package network

import (
	"net/netip"
	"testing"
)

// TestSourceLimits: each sandbox address has its own bucket of queries, then of
// refusals, and its own caps on queries in flight and TCP connections.
func TestSourceLimits(t *testing.T) {
	l := newSourceLimits(DNSOptions{SandboxRate: 1, SandboxBurst: 3, SandboxInFlight: 2, SandboxTCPConns: 1})
	a, b := netip.MustParseAddr("10.231.0.2"), netip.MustParseAddr("10.231.0.6")
	var got []verdict
	for range 8 {
		got = append(got, l.admit(a))
	}
	// Two in flight fill a's cap; three refusals empty its refusal bucket.
	want := []verdict{relayIt, relayIt, refuseIt, refuseIt, refuseIt, dropIt, dropIt, dropIt}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("a's verdicts %v, want %v", got, want)
		}
	}
	l.done(a)
	if v := l.admit(a); v != relayIt {
		t.Errorf("after one ended, a's next query is %v, want relayed (one token left)", v)
	}
	if v := l.admit(b); v != relayIt {
		t.Errorf("b's first query is %v: a's flood must not spend b's share", v)
	}
	if !l.openConn(a) || l.openConn(a) {
		t.Error("a may open one TCP connection and no second")
	}
	if !l.openConn(b) {
		t.Error("b cannot open a TCP connection while a holds its own")
	}
	l.closeConn(a)
	if !l.openConn(a) {
		t.Error("a cannot open a connection after closing one")
	}
}
