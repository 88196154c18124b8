package network

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The "internet" of the egress tests: addresses in the outside namespace
// (benchmark range, which no rule blocks), the names its DNS server gives
// them, and the port of its echo servers.
const (
	allowedIP  = "198.18.1.1" // allowed.test, www.allowed.test
	deniedIP   = "198.18.1.2" // denied.test
	cidrIP     = "198.18.1.3" // cidr.test, allowed by address
	echoPort   = "8080"
	zoneServer = internetAddr + ":53"
)

var testZone = map[string]netip.Addr{
	"allowed.test":     netip.MustParseAddr(allowedIP),
	"www.allowed.test": netip.MustParseAddr(allowedIP),
	"denied.test":      netip.MustParseAddr(deniedIP),
	"cidr.test":        netip.MustParseAddr(cidrIP),
}

// newInternet makes the outside namespace with the test addresses on its
// loopback, routed to it by the host, and starts there: a DNS server for
// testZone, an HTTP server on 80 and a TLS server on 443 that each tell
// what they saw (the Host header or server name, and the address they were
// reached at) before echoing, and the echo server of serve on 8080.
func newInternet(t *testing.T, cfg Config) string {
	t.Helper()
	outside := newOutside(t, cfg)
	name := strings.TrimPrefix(outside, DefaultNetNSDir+"/")
	for _, a := range []string{allowedIP, deniedIP, cidrIP} {
		for _, c := range [][]string{{"-n", name, "addr", "add", a + "/32", "dev", "lo"}, {"route", "add", a + "/32", "via", internetAddr}} {
			if out, err := exec.Command("ip", c...).CombinedOutput(); err != nil {
				t.Fatalf("ip %v: %v: %s", c, err, out)
			}
		}
	}
	serveFakeDNS(t, outside, zoneServer, &fakeDNS{zone: testZone})
	serveTold(t, outside, "0.0.0.0:80", false)
	serveTold(t, outside, "0.0.0.0:443", true)
	serve(t, outside, "tcp4", "0.0.0.0:"+echoPort)
	return outside
}

// serveTold listens on addr in the namespace at nsPath; each connection is
// read as an HTTP request head (or, with useTLS, a TLS handshake), answered
// with "host=<Host or server name> local=<address reached>\n", then echoed.
func serveTold(t *testing.T, nsPath, addr string, useTLS bool) {
	t.Helper()
	var ln net.Listener
	if err := inNetNS(nsPath, func() (err error) { ln, err = net.Listen("tcp4", addr); return err }); err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	cert := selfSigned(t)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				local := hostOf(c.LocalAddr().String())
				var rw io.ReadWriter = c
				var r *bufio.Reader
				host := ""
				if useTLS {
					tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}})
					if tc.Handshake() != nil {
						return
					}
					host, rw = tc.ConnectionState().ServerName, tc
					r = bufio.NewReader(tc)
				} else {
					r = bufio.NewReader(c)
					req, err := http.ReadRequest(r)
					if err != nil {
						return
					}
					host = req.Host
				}
				fmt.Fprintf(rw, "host=%s local=%s\n", host, local)
				io.Copy(rw, r)
			}()
		}
	}()
}

// selfSigned returns a certificate for any name; clients do not verify it.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"*.test"}}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// told is a connection to serveTold's servers and what they said.
type told struct {
	conn  net.Conn
	r     *bufio.Reader
	host  string // what the server saw as the name
	local string // the address the server was reached at
}

// ask connects from the namespace at nsPath to ip:80 (an HTTP request for
// host) or, with useTLS, ip:443 (a handshake with server name host) and reads
// what the server saw.
func ask(nsPath, ip, host string, useTLS bool, timeout time.Duration) (*told, error) {
	return askSplit(nsPath, ip, host, useTLS, false, timeout)
}

// splitConn sends its first write in two TCP segments, 50 ms apart.
type splitConn struct {
	net.Conn
	sent bool
}

func (c *splitConn) Write(p []byte) (int, error) {
	if c.sent || len(p) < 2 {
		return c.Conn.Write(p)
	}
	c.sent = true
	n, err := c.Conn.Write(p[:len(p)/2])
	if err != nil {
		return n, err
	}
	time.Sleep(50 * time.Millisecond)
	m, err := c.Conn.Write(p[len(p)/2:])
	return n + m, err
}

// askSplit is ask whose first write (the ClientHello or the request head),
// with split, goes in two segments.
func askSplit(nsPath, ip, host string, useTLS, split bool, timeout time.Duration) (*told, error) {
	port := "80"
	if useTLS {
		port = "443"
	}
	var c net.Conn
	if err := inNetNS(nsPath, func() (err error) { c, err = net.DialTimeout("tcp4", net.JoinHostPort(ip, port), timeout); return err }); err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(timeout))
	if split {
		c = &splitConn{Conn: c}
	}
	var conn net.Conn = c
	if useTLS {
		tc := tls.Client(c, &tls.Config{ServerName: host, InsecureSkipVerify: true})
		if err := tc.Handshake(); err != nil {
			c.Close()
			return nil, err
		}
		conn = tc
	} else if _, err := fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", host); err != nil {
		c.Close()
		return nil, err
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		conn.Close()
		return nil, err
	}
	var out told
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, "host="); ok {
			out.host = v
		} else if v, ok := strings.CutPrefix(f, "local="); ok {
			out.local = v
		}
	}
	c.SetDeadline(time.Time{})
	out.conn, out.r = conn, r
	return &out, nil
}

// echo checks that the connection still carries data both ways.
func (w *told) echo(timeout time.Duration) error {
	w.conn.SetDeadline(time.Now().Add(timeout))
	defer w.conn.SetDeadline(time.Time{})
	if _, err := io.WriteString(w.conn, "ping\n"); err != nil {
		return err
	}
	got, err := w.r.ReadString('\n')
	if err == nil && got != "ping\n" {
		err = fmt.Errorf("echo %q", got)
	}
	return err
}

// askName looks name up from the namespace at nsPath through the DNS
// redirect (any resolver address works; the forwarder answers).
func askName(t *testing.T, nsPath, name string) (netip.Addr, int, error) {
	c, err := newDNSClient(t, nsPath, "udp", "9.9.9.9:53", time.Second)
	if err != nil {
		return netip.Addr{}, 0, err
	}
	return c.askFor(name, 2*time.Second)
}

// sendRawUDP sends one UDP datagram to dst:port from the namespace at nsPath
// through a raw IP socket with a header of its own, as a sandbox bypassing
// its sockets' API would.
func sendRawUDP(nsPath string, src, dst netip.Addr, port uint16, payload string) error {
	return inNetNS(nsPath, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		pkt := make([]byte, 28, 28+len(payload))
		pkt[0], pkt[8], pkt[9] = 0x45, 64, unix.IPPROTO_UDP
		binary.BigEndian.PutUint16(pkt[2:], uint16(28+len(payload)))
		s, d := src.As4(), dst.As4()
		copy(pkt[12:], s[:])
		copy(pkt[16:], d[:])
		binary.BigEndian.PutUint16(pkt[20:], 40000)
		binary.BigEndian.PutUint16(pkt[22:], port)
		binary.BigEndian.PutUint16(pkt[24:], uint16(8+len(payload)))
		pkt = append(pkt, payload...)
		return unix.Sendto(fd, pkt, 0, &unix.SockaddrInet4{Addr: d})
	})
}

// listenUDP receives datagrams on addr in the namespace at nsPath.
func listenUDP(t *testing.T, nsPath, addr string) <-chan string {
	t.Helper()
	var pc net.PacketConn
	if err := inNetNS(nsPath, func() (err error) { pc, err = net.ListenPacket("udp4", addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	got := make(chan string, 16)
	go func() {
		buf := make([]byte, 1500)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			got <- string(buf[:n])
		}
	}()
	return got
}

// startEgress starts the DNS forwarder and the egress proxy of m, both
// resolving with the outside namespace's DNS server.
func startEgress(t *testing.T, m *Manager) *EgressProxy {
	t.Helper()
	ctx := context.Background()
	up := []netip.AddrPort{netip.MustParseAddrPort(zoneServer)}
	d, err := m.StartDNS(ctx, DNSOptions{Upstreams: up})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(ctx) })
	p, err := m.StartEgressProxy(ctx, EgressProxyOptions{Upstreams: up, HeaderTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(ctx) })
	return p
}

// mustEgress parses rules or fails the test.
func mustEgress(t testing.TB, allow, deny []string) *Egress {
	t.Helper()
	e, err := ParseEgress(allow, deny)
	if err != nil {
		t.Fatal(err)
	}
	return e
}
