package network

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseResolvConf(t *testing.T) {
	tests := []struct {
		name, text string
		want       []netip.AddrPort
	}{
		{"private resolver", "nameserver 10.255.255.53\n", []netip.AddrPort{netip.MustParseAddrPort("10.255.255.53:53")}},
		{"systemd-resolved stub with search and options", "# comment\nsearch example.com\nnameserver 127.0.0.53\noptions edns0 trust-ad\n",
			[]netip.AddrPort{netip.MustParseAddrPort("127.0.0.53:53")}},
		{"several, IPv6 and a trailing comment", "nameserver 192.0.2.1 # main\nnameserver\t2001:db8::1\n; nameserver 192.0.2.9\nnameserver fe80::1%eth0\n",
			[]netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:53"), netip.MustParseAddrPort("[2001:db8::1]:53"), netip.MustParseAddrPort("[fe80::1%eth0]:53")}},
		{"malformed lines skipped", "nameserver\nnameserver not-an-ip\nnameservers 192.0.2.2\n", nil},
		{"empty", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseResolvConf(strings.NewReader(tt.text))
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parseResolvConf = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestErrorReply(t *testing.T) {
	q := buildQuery(0xbeef, "deb.example.test")
	want := func(rcode byte) []byte {
		return append([]byte{0xbe, 0xef, 0x81, 0x80 | rcode, 0, 1, 0, 0, 0, 0, 0, 0}, q[12:]...)
	}
	withEDNS := append(append([]byte(nil), q...), 0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0)
	withEDNS[11] = 1 // ARCOUNT
	tests := []struct {
		name  string
		query []byte
		rcode byte
		want  []byte
	}{
		{"SERVFAIL", q, dnsRcodeFail, want(dnsRcodeFail)},
		{"REFUSED", q, dnsRcodeRefused, want(dnsRcodeRefused)},
		{"EDNS record dropped", withEDNS, dnsRcodeFail, want(dnsRcodeFail)},
		{"response is no query", (&fakeDNS{answer: fakeAnswer}).respond(q), dnsRcodeFail, nil},
		{"short header", q[:11], dnsRcodeRefused, nil},
		{"truncated question", q[:len(q)-2], dnsRcodeFail, nil},
		{"no question", append([]byte{1, 2, 1, 0, 0, 0}, make([]byte, 6)...), dnsRcodeRefused, nil},
		{"label too long", append(append([]byte(nil), q[:12]...), 64, 'a', 0, 0, 1, 0, 1), dnsRcodeFail, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errorReply(tt.query, tt.rcode); !bytes.Equal(got, tt.want) {
				t.Errorf("errorReply = %x, want %x", got, tt.want)
			}
		})
	}
}

func TestDNSOptionsDefaults(t *testing.T) {
	up := netip.MustParseAddrPort("192.0.2.1:53")
	tests := []struct {
		name    string
		opts    DNSOptions
		want    []netip.AddrPort
		wantErr bool
	}{
		{"explicit upstreams", DNSOptions{Upstreams: []netip.AddrPort{up}}, []netip.AddrPort{up}, false},
		{"missing resolv.conf falls back to loopback", DNSOptions{ResolvConf: "/nonexistent/resolv.conf"}, []netip.AddrPort{fallbackUpstream}, false},
		{"port out of range", DNSOptions{Port: 70000}, nil, true},
		{"negative limit", DNSOptions{MaxInFlight: -1}, nil, true},
		{"upstream without port", DNSOptions{Upstreams: []netip.AddrPort{netip.AddrPortFrom(up.Addr(), 0)}}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.opts.withDefaults()
			if tt.wantErr {
				if !errors.Is(err, ErrInvalidConfig) {
					t.Fatalf("error = %v, want ErrInvalidConfig", err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got.Upstreams, tt.want) || got.Timeout != DefaultDNSTimeout ||
				got.MaxInFlight != DefaultDNSMaxInFlight || got.MaxTCPConns != DefaultDNSMaxTCPConns {
				t.Errorf("withDefaults = %+v, %v; want upstreams %v and default limits", got, err, tt.want)
			}
		})
	}
}

// TestExchange talks to a fake upstream on loopback: stray datagrams with
// the wrong ID are skipped, a silent upstream times out.
func TestExchange(t *testing.T) {
	f := &fakeDNS{answer: fakeAnswer}
	fake := serveFakeDNS(t, "", "127.0.0.1:0", f)
	silent, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	noisy, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer noisy.Close()
	go func() { // answers with a wrong ID first, then correctly
		buf := make([]byte, 512)
		for {
			n, from, err := noisy.ReadFrom(buf)
			if err != nil {
				return
			}
			resp := f.respond(buf[:n])
			bad := append([]byte(nil), resp...)
			bad[0]++
			noisy.WriteTo(bad, from)
			noisy.WriteTo(resp, from)
		}
	}()
	q := buildQuery(7, "deb.example.test")
	tests := []struct {
		name, network string
		up            net.Addr
		wantErr       bool
	}{
		{"udp", "udp", fake, false},
		{"tcp", "tcp", fake, false},
		{"udp skips a wrong ID", "udp", noisy.LocalAddr(), false},
		{"silent upstream times out", "udp", silent.LocalAddr(), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := netip.MustParseAddrPort(tt.up.String())
			start := time.Now()
			resp, err := exchange(context.Background(), tt.network, up, q, 300*time.Millisecond)
			if tt.wantErr {
				if err == nil || time.Since(start) > 2*time.Second {
					t.Fatalf("exchange = %x, %v after %v; want a timeout", resp, err, time.Since(start))
				}
				return
			}
			if err != nil || !answers(q, resp) || !bytes.HasSuffix(resp, fakeAnswer.AsSlice()) {
				t.Fatalf("exchange = %x, %v; want the fake answer", resp, err)
			}
		})
	}
}

// TestRelay checks the choice of transport towards upstreams on loopback.
func TestRelay(t *testing.T) {
	normal := serveFakeDNS(t, "", "127.0.0.1:0", &fakeDNS{answer: fakeAnswer})
	udpOnly := serveFakeDNS(t, "", "127.0.0.1:0", &fakeDNS{answer: fakeAnswer, noTCP: true})
	trunc := serveFakeDNS(t, "", "127.0.0.1:0", &fakeDNS{answer: fakeAnswer, truncUDP: true})
	truncUDPOnly := serveFakeDNS(t, "", "127.0.0.1:0", &fakeDNS{answer: fakeAnswer, truncUDP: true, noTCP: true})
	dead, err := net.ListenPacket("udp4", "127.0.0.1:0") // closed: nothing listens there
	if err != nil {
		t.Fatal(err)
	}
	dead.Close()
	const (
		full = iota
		truncatedAnswer
		failure
	)
	tests := []struct {
		name   string
		ups    []net.Addr
		stream bool
		want   int
	}{
		{"UDP query", []net.Addr{normal}, false, full},
		{"TCP query to a UDP-only resolver", []net.Addr{udpOnly}, true, full},
		{"TCP query, truncated over UDP, retried over TCP", []net.Addr{trunc}, true, full},
		{"UDP query gets the truncated answer as it is", []net.Addr{trunc}, false, truncatedAnswer},
		{"TCP query, truncated and no TCP upstream", []net.Addr{truncUDPOnly}, true, truncatedAnswer},
		{"dead upstream gives SERVFAIL", []net.Addr{dead.LocalAddr()}, true, failure},
		{"next upstream after a dead one", []net.Addr{dead.LocalAddr(), normal}, false, full},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &DNSForwarder{ctx: context.Background(), opts: DNSOptions{Timeout: 300 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}}
			for _, a := range tt.ups {
				d.opts.Upstreams = append(d.opts.Upstreams, netip.MustParseAddrPort(a.String()))
			}
			q := buildQuery(42, "deb.example.test")
			resp := d.relay(tt.stream, q)
			var got int
			switch {
			case !answers(q, resp):
				t.Fatalf("relay = %x, not an answer to %x", resp, q)
			case resp[3]&0x0f == dnsRcodeFail:
				got = failure
			case truncated(resp):
				got = truncatedAnswer
			case bytes.HasSuffix(resp, fakeAnswer.AsSlice()):
				got = full
			default:
				t.Fatalf("relay = %x", resp)
			}
			if got != tt.want {
				t.Errorf("relay gave kind %d (%x), want %d", got, resp, tt.want)
			}
		})
	}
}
