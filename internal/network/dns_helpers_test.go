package network

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeDNS is a stand-in upstream resolver: it answers every A query with
// one fixed address (or, with a zone, the name's address there and NXDOMAIN
// for names it lacks), after delay, and counts the queries it is working on.
type fakeDNS struct {
	answer   netip.Addr
	zone     map[string]netip.Addr
	delay    time.Duration
	noTCP    bool // serve UDP only, as some hosts' resolvers do
	truncUDP bool // answer over UDP with TC set and no records

	mu            sync.Mutex
	cur, max, all int
}

// serveFakeDNS runs f on UDP and TCP at addr inside the namespace at nsPath
// ("" for the host) and returns the address (with port 0, the TCP listener
// takes the port the UDP one got).
func serveFakeDNS(t testing.TB, nsPath, addr string, f *fakeDNS) net.Addr {
	t.Helper()
	var pc net.PacketConn
	var ln net.Listener
	listen := func() (err error) {
		if pc, err = net.ListenPacket("udp4", addr); err != nil || f.noTCP {
			return err
		}
		ln, err = net.Listen("tcp4", pc.LocalAddr().String())
		return err
	}
	var err error
	if nsPath == "" {
		err = listen()
	} else {
		err = inNetNS(nsPath, listen)
	}
	if err != nil {
		t.Fatalf("fake DNS on %s: %v", addr, err)
	}
	t.Cleanup(func() { pc.Close() })
	if ln != nil {
		t.Cleanup(func() { ln.Close() })
	}
	go func() {
		for {
			buf := make([]byte, 512)
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			go func() {
				resp := f.respond(buf[:n])
				if resp != nil && f.truncUDP {
					resp = resp[:len(resp)-16]
					resp[2] |= dnsFlagTC
					resp[7] = 0 // ANCOUNT
				}
				if resp != nil {
					pc.WriteTo(resp, from)
				}
			}()
		}
	}()
	if ln == nil {
		return pc.LocalAddr()
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				for {
					q, err := readStreamMsg(c)
					if err != nil {
						return
					}
					if resp := f.respond(q); resp == nil || writeStreamMsg(c, resp) != nil {
						return
					}
				}
			}()
		}
	}()
	return pc.LocalAddr()
}

// respond builds the answer to q: its question and one A record.
func (f *fakeDNS) respond(q []byte) []byte {
	f.mu.Lock()
	f.cur++
	f.all++
	f.max = max(f.max, f.cur)
	f.mu.Unlock()
	defer func() { f.mu.Lock(); f.cur--; f.mu.Unlock() }()
	time.Sleep(f.delay)
	if len(q) < 12 {
		return nil
	}
	end := 12
	for end < len(q) && q[end] != 0 {
		end += 1 + int(q[end])
	}
	end += 5 // root label, QTYPE, QCLASS
	if end > len(q) {
		return nil
	}
	resp := append([]byte(nil), q[:end]...)
	resp[2], resp[3] = 0x81, 0x80 // QR, RD, RA, NOERROR
	clear(resp[6:12])
	answer := f.answer
	if f.zone != nil {
		name, _ := questionName(q)
		var ok bool
		if answer, ok = f.zone[name]; !ok || binary.BigEndian.Uint16(q[end-4:]) != 1 {
			if !ok {
				resp[3] = 0x83 // NXDOMAIN
			}
			return resp // no A record (e.g. an AAAA query)
		}
	}
	binary.BigEndian.PutUint16(resp[6:], 1)
	a := answer.As4()
	resp = append(resp, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4)
	return append(resp, a[:]...)
}

func (f *fakeDNS) stats() (maxBusy, all int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.max, f.all
}

// buildQuery encodes an A query for name with recursion desired.
func buildQuery(id uint16, name string) []byte {
	q := binary.BigEndian.AppendUint16(nil, id)
	q = append(q, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0)
	for _, l := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		q = append(q, byte(len(l)))
		q = append(q, l...)
	}
	return append(q, 0, 0, 1, 0, 1)
}

// dnsClient asks one server from one socket, as a sandbox's stub resolver.
type dnsClient struct {
	proto string
	conn  net.Conn
}

// newDNSClient opens a socket to server ("udp" or "tcp") inside the
// namespace at nsPath ("" for the host).
func newDNSClient(t *testing.T, nsPath, proto, server string, timeout time.Duration) (*dnsClient, error) {
	var c net.Conn
	dial := func() (err error) { c, err = net.DialTimeout(proto+"4", server, timeout); return err }
	var err error
	if nsPath == "" {
		err = dial()
	} else {
		err = inNetNS(nsPath, dial)
	}
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return &dnsClient{proto: proto, conn: c}, nil
}

// ask sends one query and returns the address of its answer, or the
// response code when the answer is an error.
func (c *dnsClient) ask(timeout time.Duration) (netip.Addr, int, error) {
	return c.askFor("deb.example.test", timeout)
}

// askFor is ask for name.
func (c *dnsClient) askFor(name string, timeout time.Duration) (netip.Addr, int, error) {
	var b [2]byte
	rand.Read(b[:])
	id := binary.BigEndian.Uint16(b[:])
	q := buildQuery(id, name)
	c.conn.SetDeadline(time.Now().Add(timeout))
	var resp []byte
	if c.proto == "tcp" {
		var err error
		if resp, err = exchangeStream(c.conn, q); err != nil {
			return netip.Addr{}, 0, err
		}
	} else {
		if _, err := c.conn.Write(q); err != nil {
			return netip.Addr{}, 0, err
		}
		buf := make([]byte, 1500)
		n, err := c.conn.Read(buf)
		if err != nil {
			return netip.Addr{}, 0, err
		}
		resp = buf[:n]
	}
	switch {
	case len(resp) < len(q) || binary.BigEndian.Uint16(resp) != id || resp[2]&0x80 == 0:
		return netip.Addr{}, 0, fmt.Errorf("reply %x does not answer query %x", resp, q)
	case resp[3]&0x0f != 0:
		return netip.Addr{}, int(resp[3] & 0x0f), nil
	case binary.BigEndian.Uint16(resp[6:]) != 1 || len(resp) != len(q)+16:
		return netip.Addr{}, 0, fmt.Errorf("reply %x has no single A record", resp)
	}
	return netip.AddrFrom4([4]byte(resp[len(resp)-4:])), 0, nil
}

// askOnce opens a client and asks once; a missing answer is an error.
func askOnce(t *testing.T, nsPath, proto, server string, timeout time.Duration) (netip.Addr, error) {
	c, err := newDNSClient(t, nsPath, proto, server, timeout)
	if err != nil {
		return netip.Addr{}, err
	}
	a, rcode, err := c.ask(timeout)
	if err == nil && rcode != 0 {
		err = errors.New("error response " + fmt.Sprint(rcode))
	}
	return a, err
}
