package network

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	internetAddr = "198.18.0.1"   // the outside namespace (benchmark range)
	hostUplink   = "198.18.0.254" // the host's address towards it
	blockedWait  = 400 * time.Millisecond
)

// privateTargets live in the outside namespace and are routed to it by the
// host, so only the firewall stops sandboxes from reaching them. The last
// one is public but listed in Config.ExtraBlocked by the isolation test.
var privateTargets = []string{"10.99.0.1", "172.16.5.5", "192.168.7.7", "100.64.1.1", "169.254.169.254", extraBlocked}

const extraBlocked = "203.0.113.9"

// newOutside makes a namespace that plays the internet, joined to the host
// by a veth whose name does not carry the sandbox prefix.
func newOutside(t testing.TB, cfg Config) string {
	t.Helper()
	name := "xo" + cfg.NamePrefix[2:]
	path := filepath.Join(DefaultNetNSDir, name)
	cmds := [][]string{
		{"netns", "add", name},
		{"link", "add", name, "type", "veth", "peer", "name", "eth0", "netns", name},
		{"addr", "add", hostUplink + "/24", "dev", name},
		{"link", "set", name, "up"},
		{"-n", name, "addr", "add", internetAddr + "/24", "dev", "eth0"},
		{"-n", name, "link", "set", "eth0", "up"},
		{"-n", name, "link", "set", "lo", "up"},
		{"-n", name, "route", "add", DefaultSubnet.String(), "via", hostUplink},
	}
	for _, a := range privateTargets {
		cmds = append(cmds, []string{"-n", name, "addr", "add", a + "/32", "dev", "lo"},
			[]string{"route", "add", a + "/32", "via", internetAddr})
	}
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", name).Run()
		exec.Command("ip", "netns", "del", name).Run()
	})
	for _, c := range cmds {
		if out, err := exec.Command("ip", c...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", c, err, out)
		}
	}
	return path
}

// serve listens on addr inside the namespace at nsPath ("" for the host).
// Each connection is first told the peer address the server sees, then
// echoed.
func serve(t *testing.T, nsPath, network, addr string) net.Addr {
	t.Helper()
	var ln net.Listener
	listen := func() (err error) { ln, err = net.Listen(network, addr); return err }
	var err error
	if nsPath == "" {
		err = listen()
	} else {
		err = inNetNS(nsPath, listen)
	}
	if err != nil {
		t.Fatalf("listen on %s in %q: %v", addr, nsPath, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.WriteString(c, c.RemoteAddr().String()+"\n")
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr()
}

// dial connects from the namespace at nsPath ("" for the host) and returns
// the connection and the address the server saw.
func dial(nsPath, addr string, timeout time.Duration) (net.Conn, string, error) {
	var c net.Conn
	d := func() (err error) { c, err = net.DialTimeout("tcp", addr, timeout); return err }
	var err error
	if nsPath == "" {
		err = d()
	} else {
		err = inNetNS(nsPath, d)
	}
	if err != nil {
		return nil, "", err
	}
	c.SetDeadline(time.Now().Add(2 * time.Second))
	seen, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		c.Close()
		return nil, "", err
	}
	c.SetDeadline(time.Time{})
	return c, strings.TrimSpace(seen), nil
}

func hostOf(addrPort string) string {
	ap, err := netip.ParseAddrPort(addrPort)
	if err != nil {
		return addrPort
	}
	return ap.Addr().String()
}

func TestIsolationWithRealTraffic(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	cfg := testConfig(t)
	cfg.ExtraBlocked = []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}
	m := newTestManager(t, cfg)
	outside := newOutside(t, cfg)

	a, err := m.Setup(ctx, "iso-a", Options{AllowInternet: false})
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Setup(ctx, "iso-b", Options{AllowInternet: false})
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.Setup(ctx, "iso-c", Options{AllowInternet: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, ep := range []*Endpoint{a, b, c} {
		serve(t, ep.NetNSPath, "tcp4", "0.0.0.0:8080")
	}
	serve(t, outside, "tcp4", "0.0.0.0:8080")
	hostPort := serve(t, "", "tcp4", "0.0.0.0:0").(*net.TCPAddr).Port
	onHost := func(ip string) string { return net.JoinHostPort(ip, strconv.Itoa(hostPort)) }
	on8080 := func(ip string) string { return net.JoinHostPort(ip, "8080") }

	type tc struct {
		name     string
		from     string // namespace path, "" for the host
		to       string
		want     bool
		wantSeen string // the source address the server must see
	}
	cases := []tc{
		{"host reaches sandbox A", "", on8080(a.Address.String()), true, a.Gateway.String()},
		{"host reaches sandbox C", "", on8080(c.Address.String()), true, c.Gateway.String()},
		{"host reaches the internet (control)", "", on8080(internetAddr), true, hostUplink},
		{"C reaches the internet through NAT", c.NetNSPath, on8080(internetAddr), true, hostUplink},
		{"A without internet cannot reach the internet", a.NetNSPath, on8080(internetAddr), false, ""},
		{"A cannot reach sandbox B", a.NetNSPath, on8080(b.Address.String()), false, ""},
		{"C cannot reach sandbox B", c.NetNSPath, on8080(b.Address.String()), false, ""},
		{"A cannot reach its gateway (host)", a.NetNSPath, onHost(a.Gateway.String()), false, ""},
		{"C cannot reach its gateway (host)", c.NetNSPath, onHost(c.Gateway.String()), false, ""},
		{"C cannot reach another sandbox's gateway", c.NetNSPath, onHost(b.Gateway.String()), false, ""},
		{"C cannot reach the host's uplink address", c.NetNSPath, onHost(hostUplink), false, ""},
		{"host listener works (control)", "", onHost(hostUplink), true, hostUplink},
		{"outside cannot reach sandbox C", outside, on8080(c.Address.String()), false, ""},
		{"outside reaches the host (control)", outside, onHost(hostUplink), true, internetAddr},
	}
	for _, ip := range privateTargets {
		cases = append(cases,
			tc{"host reaches " + ip + " (control)", "", on8080(ip), true, hostUplink},
			tc{"C cannot reach " + ip, c.NetNSPath, on8080(ip), false, ""})
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			conn, seen, err := dial(tt.from, tt.to, blockedWait)
			if conn != nil {
				conn.Close()
			}
			switch {
			case tt.want && err != nil:
				t.Fatalf("dial %s: %v, want success", tt.to, err)
			case !tt.want && err == nil:
				t.Fatalf("dial %s succeeded (server saw %s), want it blocked", tt.to, seen)
			case tt.want && hostOf(seen) != tt.wantSeen:
				t.Fatalf("server saw %s, want %s", seen, tt.wantSeen)
			}
		})
	}
}

func TestSetAllowInternetTogglesEgress(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	cfg := testConfig(t)
	m := newTestManager(t, cfg)
	outside := newOutside(t, cfg)
	serve(t, outside, "tcp4", "0.0.0.0:8080")
	ep, err := m.Setup(ctx, "toggle", Options{})
	if err != nil {
		t.Fatal(err)
	}
	target := net.JoinHostPort(internetAddr, "8080")
	if _, _, err := dial(ep.NetNSPath, target, blockedWait); err == nil {
		t.Fatal("egress allowed before SetAllowInternet(true)")
	}
	if err := m.SetAllowInternet(ctx, "toggle", true); err != nil {
		t.Fatal(err)
	}
	conn, _, err := dial(ep.NetNSPath, target, 2*time.Second)
	if err != nil {
		t.Fatalf("egress blocked after SetAllowInternet(true): %v", err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	echo := func() error {
		conn.SetDeadline(time.Now().Add(blockedWait))
		if _, err := io.WriteString(conn, "ping\n"); err != nil {
			return err
		}
		_, err := r.ReadString('\n')
		return err
	}
	if err := echo(); err != nil {
		t.Fatalf("echo on an allowed connection: %v", err)
	}
	if err := m.SetAllowInternet(ctx, "toggle", false); err != nil {
		t.Fatal(err)
	}
	if err := echo(); err == nil {
		t.Fatal("an established connection kept working after SetAllowInternet(false)")
	}
	if got, _ := m.Get("toggle"); got.AllowInternet {
		t.Error("Get still reports AllowInternet")
	}
	m2 := newTestManager(t, cfg) // the setting survives a restart
	if got, _ := m2.Get("toggle"); got == nil || got.AllowInternet {
		t.Errorf("after restart Get = %+v, want AllowInternet false", got)
	}
}

func TestSpoofedSourceIsDropped(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	cfg := testConfig(t)
	m := newTestManager(t, cfg)
	outside := newOutside(t, cfg)
	victim, err := m.Setup(ctx, "victim", Options{AllowInternet: true})
	if err != nil {
		t.Fatal(err)
	}
	spoofer, err := m.Setup(ctx, "spoofer", Options{AllowInternet: true})
	if err != nil {
		t.Fatal(err)
	}
	var pc net.PacketConn
	if err := inNetNS(outside, func() (err error) { pc, err = net.ListenPacket("udp4", "0.0.0.0:9999"); return err }); err != nil {
		t.Fatal(err)
	}
	defer pc.Close()

	// First a datagram claiming the victim's address, then a genuine one.
	for _, src := range []netip.Addr{victim.Address, spoofer.Address} {
		if err := inNetNS(spoofer.NetNSPath, func() error { return sendUDPFrom(src, internetAddr, 9999, src.String()) }); err != nil {
			t.Fatalf("send from %s: %v", src, err)
		}
	}
	buf := make([]byte, 64)
	for {
		pc.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("the genuine datagram did not arrive: %v", err)
		}
		switch string(buf[:n]) {
		case victim.Address.String():
			t.Fatalf("a datagram with a spoofed source got out (seen from %s)", from)
		case spoofer.Address.String():
			if hostOf(from.String()) != hostUplink {
				t.Errorf("genuine datagram seen from %s, want %s", from, hostUplink)
			}
			return
		}
	}
}

// sendUDPFrom sends payload from src, which need not be a local address
// (IP_TRANSPARENT), as a spoofing sandbox would.
func sendUDPFrom(src netip.Addr, dst string, port int, payload string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, unix.SOL_IP, unix.IP_TRANSPARENT, 1); err != nil {
		return err
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: src.As4()}); err != nil {
		return err
	}
	to := &unix.SockaddrInet4{Port: port, Addr: netip.MustParseAddr(dst).As4()}
	err = unix.Sendto(fd, []byte(payload), 0, to)
	if errors.Is(err, unix.EINVAL) {
		return errors.New("kernel refused the non-local source")
	}
	return err
}
