package controlplane

import (
	"testing"
	"time"
)

func TestNodeAddrsCache(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		name        string
		at          time.Time
		forget      bool
		wantOK      bool
		wantSilence time.Duration
	}{
		{"at once", t0, false, true, 2 * time.Second},
		{"the silence grows with the clock", t0.Add(700 * time.Millisecond), false, true, 2700 * time.Millisecond},
		{"past the TTL it is read again", t0.Add(nodeAddrTTL + time.Millisecond), false, false, 0},
		{"a clock gone back reads again", t0.Add(-time.Millisecond), false, false, 0},
		{"a report to this replica reads again", t0, true, false, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var c nodeAddrs
			c.put("node-a", "a.test:1", 2*time.Second, t0)
			if tc.forget {
				c.forget("node-a")
			}
			addr, silence, ok := c.get("node-a", tc.at)
			if ok != tc.wantOK || (ok && (addr != "a.test:1" || silence != tc.wantSilence)) {
				t.Fatalf("get = %q, %v, %v; want ok %v, silence %v", addr, silence, ok, tc.wantOK, tc.wantSilence)
			}
			if _, _, ok := c.get("node-b", tc.at); ok {
				t.Fatal("a node never read is cached")
			}
		})
	}
}
