package network

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"testing"
	"time"
)

// BenchmarkSetupTeardown measures one Setup plus one Teardown and reports
// the median and 90th percentile of each.
func BenchmarkSetupTeardown(b *testing.B) {
	requireRoot(b)
	ctx := context.Background()
	m := newTestManager(b, testConfig(b))
	var setups, teardowns []time.Duration
	i := 0
	for b.Loop() {
		id := fmt.Sprintf("bench%d", i)
		i++
		t0 := time.Now()
		if _, err := m.Setup(ctx, id, Options{AllowInternet: true}); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := m.Teardown(ctx, id); err != nil {
			b.Fatal(err)
		}
		setups, teardowns = append(setups, t1.Sub(t0)), append(teardowns, time.Since(t1))
	}
	report := func(name string, d []time.Duration) {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		b.ReportMetric(float64(d[len(d)/2].Microseconds())/1000, name+"-p50-ms")
		b.ReportMetric(float64(d[len(d)*9/10].Microseconds())/1000, name+"-p90-ms")
	}
	report("setup", setups)
	report("teardown", teardowns)
}

// BenchmarkEgressDownload downloads 1 GiB over HTTP from the outside
// namespace: direct (a sandbox without rules, forwarded by the kernel) and
// through the egress proxy (a sandbox allowed only by name, its Host header
// read by the proxy, which then splices the connections). Compare the two
// MB/s figures: the proxy's cost per connection is its share of the time.
func BenchmarkEgressDownload(b *testing.B) {
	requireRoot(b)
	ctx := context.Background()
	cfg := testConfig(b)
	m := newTestManager(b, cfg)
	outside := newOutside(b, cfg)
	serveDownload(b, outside, net.JoinHostPort(internetAddr, "80"), downloadSize)
	up := []netip.AddrPort{netip.MustParseAddrPort(net.JoinHostPort(internetAddr, "53"))}
	serveFakeDNS(b, outside, net.JoinHostPort(internetAddr, "53"), &fakeDNS{answer: netip.MustParseAddr(internetAddr)})
	px, err := m.StartEgressProxy(ctx, EgressProxyOptions{Upstreams: up})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { px.Close(ctx) })
	for _, c := range []struct {
		name   string
		egress *Egress
	}{
		{"direct", nil},
		{"proxied", mustEgress(b, []string{"download.test"}, []string{"0.0.0.0/0"})},
	} {
		ep, err := m.Setup(ctx, "dl-"+c.name, Options{AllowInternet: true, Egress: c.egress})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(downloadSize)
			for b.Loop() {
				if err := download(ep.NetNSPath, net.JoinHostPort(internetAddr, "80"), "download.test"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	if st := px.Stats(); st.Proxied == 0 {
		b.Fatalf("the proxied downloads did not go through the proxy: %+v", st)
	}
}

// downloadSize is what one download of BenchmarkEgressDownload moves.
const downloadSize = 1 << 30

// serveDownload answers every HTTP request on addr in the namespace at
// nsPath with size bytes, then closes the connection.
func serveDownload(tb testing.TB, nsPath, addr string, size int64) {
	tb.Helper()
	var ln net.Listener
	if err := inNetNS(nsPath, func() (err error) { ln, err = net.Listen("tcp4", addr); return err }); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	chunk := make([]byte, 1<<20)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
					return
				}
				fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", size)
				for left := size; left > 0; left -= int64(len(chunk)) {
					if _, err := c.Write(chunk[:min(left, int64(len(chunk)))]); err != nil {
						return
					}
				}
			}()
		}
	}()
}

// download fetches one answer of serveDownload from the namespace at nsPath
// and reads it to the end.
func download(nsPath, addr, host string) error {
	var c net.Conn
	if err := inNetNS(nsPath, func() (err error) { c, err = net.DialTimeout("tcp4", addr, 2*time.Second); return err }); err != nil {
		return err
	}
	defer c.Close()
	if _, err := fmt.Fprintf(c, "GET /big HTTP/1.1\r\nHost: %s\r\n\r\n", host); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err == nil && n != resp.ContentLength {
		err = fmt.Errorf("got %d of %d bytes", n, resp.ContentLength)
	}
	return err
}
