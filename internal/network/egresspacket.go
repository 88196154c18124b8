package network

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"time"
)

// TCP flags the checker looks at.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpACK = 0x10
)

// tcpSegment is what the egress checker reads of an IPv4 TCP packet.
type tcpSegment struct {
	flow    flowKey
	seq     uint32
	flags   uint8
	payload []byte
}

// flowKey names a TCP connection by its sender's side: the sandbox's address
// and port, and where it sent it.
type flowKey struct {
	src, dst netip.AddrPort
}

// parseTCP reads an IPv4 packet carrying TCP; ok is false for anything else
// (another protocol, a fragment, a truncated or malformed header).
func parseTCP(pkt []byte) (tcpSegment, bool) {
	if len(pkt) < 20 || pkt[0]>>4 != 4 || pkt[9] != 6 {
		return tcpSegment{}, false
	}
	ihl := int(pkt[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(pkt[2:]))
	frag := binary.BigEndian.Uint16(pkt[6:]) & 0x3fff // more-fragments flag and offset
	if ihl < 20 || total < ihl+20 || total > len(pkt) || frag != 0 {
		return tcpSegment{}, false
	}
	tcp := pkt[ihl:total]
	off := int(tcp[12]>>4) * 4
	if off < 20 || off > len(tcp) {
		return tcpSegment{}, false
	}
	src := netip.AddrFrom4([4]byte(pkt[12:16]))
	dst := netip.AddrFrom4([4]byte(pkt[16:20]))
	return tcpSegment{
		flow: flowKey{
			src: netip.AddrPortFrom(src, binary.BigEndian.Uint16(tcp[0:])),
			dst: netip.AddrPortFrom(dst, binary.BigEndian.Uint16(tcp[2:])),
		},
		seq:     binary.BigEndian.Uint32(tcp[4:]),
		flags:   tcp[13],
		payload: tcp[off:],
	}, true
}

// errNeedMore ends a read of a connection's head that has not all arrived.
var errNeedMore = errors.New("connection head incomplete")

// headConn is a connection whose reads return the bytes of a connection's head
// seen so far, then errNeedMore; it notes whether the parser wanted more.
type headConn struct {
	net.Conn // nil: only Read, Write and deadlines are used by the parsers
	r        *bytes.Reader
	wanted   bool
}

func (c *headConn) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err == io.EOF {
		c.wanted = true
		return n, errNeedMore
	}
	return n, err
}

func (c *headConn) Write(p []byte) (int, error)      { return 0, net.ErrClosed }
func (c *headConn) SetDeadline(time.Time) error      { return nil }
func (c *headConn) SetReadDeadline(time.Time) error  { return nil }
func (c *headConn) SetWriteDeadline(time.Time) error { return nil }
func (c *headConn) Close() error                     { return nil }
func (c *headConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *headConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }

// nameInHead reads the name a connection to port asks for from the first
// bytes it sent, with the same parsers as the egress proxy: the TLS server
// name on 443, the HTTP Host on 80. done is false while the head is
// incomplete; once done, name is "" when the head names nothing (or is not
// TLS or HTTP) and an address is never a name.
func nameInHead(port uint16, head []byte) (name string, done bool) {
	c := &headConn{r: bytes.NewReader(head)}
	switch port {
	case httpsPort:
		name, _ = peekServerName(c, egressHeadLimit)
	case httpPort:
		name, _ = peekHost(c, egressHeadLimit)
	default:
		return "", true
	}
	if c.wanted && name == "" {
		return "", false
	}
	if _, err := netip.ParseAddr(name); err == nil {
		name = ""
	}
	return name, true
}
