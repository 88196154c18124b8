package network

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// floodDNS sends queries to server from the namespace at nsPath, from socks
// sockets, each sending floodBatch queries every millisecond (tens of thousands
// a second: ten times what the forwarder could relay at all, about what a
// sandbox's network stack sends flat out) until stop closes, and counts the
// answers by response code.
func floodDNS(t *testing.T, nsPath, server string, socks int, stop <-chan struct{}) (sent *atomic.Int64, rcodes *[16]atomic.Int64) {
	t.Helper()
	sent, rcodes = new(atomic.Int64), new([16]atomic.Int64)
	for i := range socks {
		c, err := newDNSClient(t, nsPath, "udp", server, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conn := c.conn
		go func() {
			buf := make([]byte, 1500)
			for {
				conn.SetReadDeadline(time.Now().Add(time.Second))
				n, err := conn.Read(buf)
				if n >= 4 {
					rcodes[buf[3]&0x0f].Add(1)
				}
				if err != nil {
					select {
					case <-stop:
						return
					default:
					}
				}
			}
		}()
		go func() {
			q := buildQuery(uint16(i), "flood.example.test")
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			for n := uint16(0); ; {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				for range floodBatch {
					n++
					binary.BigEndian.PutUint16(q, n)
					if _, err := conn.Write(q); err == nil {
						sent.Add(1)
					}
				}
			}
		}()
	}
	return sent, rcodes
}

// floodBatch is how many queries each flooding socket sends a millisecond.
const floodBatch = 8

// TestDNSFloodSparesNeighbours: a sandbox flooding the forwarder with queries gets
// its excess refused or dropped, while a neighbour's queries are still answered
// promptly, over UDP and TCP.
func TestDNSFloodSparesNeighbours(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	cfg := testConfig(t)
	m := newTestManager(t, cfg)
	up := &fakeDNS{answer: fakeAnswer, delay: 50 * time.Millisecond}
	_, resolvConf := dnsWorld(t, cfg, up)
	d := startDNS(t, m, DNSOptions{ResolvConf: resolvConf})
	flooder, err := m.Setup(ctx, "dns-flooder", Options{AllowInternet: true})
	if err != nil {
		t.Fatal(err)
	}
	neighbour, err := m.Setup(ctx, "dns-neighbour", Options{AllowInternet: true})
	if err != nil {
		t.Fatal(err)
	}
	server := net.JoinHostPort(hostResolver, "53")
	if _, err := askOnce(t, neighbour.NetNSPath, "udp", server, answerWait); err != nil {
		t.Fatalf("before the flood: %v", err)
	}

	stop := make(chan struct{})
	var once sync.Once
	halt := func() { once.Do(func() { close(stop) }) }
	defer halt()
	start := time.Now()
	sent, rcodes := floodDNS(t, flooder.NetNSPath, server, 8, stop)
	time.Sleep(500 * time.Millisecond) // let the flood fill whatever it can
	var took []time.Duration
	for i := range 20 {
		proto := "udp"
		if i%4 == 3 {
			proto = "tcp"
		}
		t0 := time.Now()
		_, err := askOnce(t, neighbour.NetNSPath, proto, server, answerWait)
		took = append(took, time.Since(t0))
		if err != nil {
			t.Errorf("neighbour's query %d (%s) during the flood: %v", i, proto, err)
		}
	}
	halt()
	flooded := time.Since(start)
	time.Sleep(time.Second) // for the relays in flight to end
	slices.Sort(took)
	_, relayed := up.stats()
	t.Logf("flood of %d queries in %v: %d answered, %d refused; upstream saw %d queries; neighbour's answers took %v (median) to %v",
		sent.Load(), flooded, rcodes[0].Load(), rcodes[dnsRcodeRefused].Load(), relayed, took[len(took)/2], took[len(took)-1])
	if worst := took[len(took)-1]; worst > time.Second {
		t.Errorf("the neighbour's slowest answer took %v, want under a second (the upstream answers in 50ms)", worst)
	}
	// The flooder got its token bucket's worth relayed, refusals beyond that, and
	// the firewall dropped the rest before the forwarder read it.
	neighbours := int64(len(took) + 1)
	if limit := int64(DefaultDNSRate*flooded.Seconds()*1.1) + DefaultDNSBurst + neighbours; int64(relayed) > limit {
		t.Errorf("the upstream saw %d queries, want at most %d", relayed, limit)
	}
	st := d.Stats()
	if st.Refused == 0 || rcodes[dnsRcodeRefused].Load() == 0 {
		t.Errorf("stats %+v, %d REFUSED answers: want the flood's excess refused", st, rcodes[dnsRcodeRefused].Load())
	}
	if st.Relayed != uint64(relayed) {
		t.Errorf("stats say %d relayed, the upstream saw %d", st.Relayed, relayed)
	}
	if dropped := kernelDNSDrops(t, cfg); dropped == 0 {
		t.Error("the firewall dropped none of the flood")
	} else {
		t.Logf("the firewall dropped %d packets of the flood", dropped)
	}
}

// kernelDNSDrops sums the packets the DNS chain's per-sandbox rate rules dropped.
func kernelDNSDrops(t *testing.T, cfg Config) int64 {
	t.Helper()
	out, err := exec.Command("iptables-save", "-c", "-t", "filter").Output()
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "-A "+cfg.ChainPrefix+"-DNSIN ") && strings.Contains(l, "hashlimit") {
			var pkts, bytes int64
			fmt.Sscanf(l, "[%d:%d]", &pkts, &bytes)
			n += pkts
		}
	}
	return n
}
