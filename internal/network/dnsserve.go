package network

import (
	"errors"
	"net"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// serveUDP reads queries until the socket is closed, relaying each on its
// own goroutine while fewer than MaxInFlight are in flight.
func (d *DNSForwarder) serveUDP() {
	defer d.wg.Done()
	buf := make([]byte, dnsMaxMessage)
	oob := make([]byte, 2*unix.CmsgSpace(unix.SizeofInet4Pktinfo))
	for {
		n, oobn, _, src, err := d.udp.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			d.opts.Logger.Warn("DNS forwarder: read UDP query", "err", err)
			continue
		}
		dst, ok := pktinfoDst(oob[:oobn])
		if !ok || !d.fromSandbox(src.Addr(), dst) || !isDNSQuery(buf[:n]) {
			continue
		}
		select {
		case d.query <- struct{}{}:
		default:
			continue // overloaded: drop it, the client retries
		}
		q := append([]byte(nil), buf[:n]...)
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			defer func() { <-d.query }()
			resp := d.relay(false, q)
			if resp == nil {
				return
			}
			// Reply from the address the query was sent to, so that
			// conntrack maps it back to the resolver the sandbox asked.
			oob := unix.PktInfo4(&unix.Inet4Pktinfo{Spec_dst: dst.As4()})
			if _, _, err := d.udp.WriteMsgUDPAddrPort(resp, oob, src); err != nil && !errors.Is(err, net.ErrClosed) {
				d.opts.Logger.Debug("DNS forwarder: send UDP answer", "to", src, "err", err)
			}
		}()
	}
}

// pktinfoDst returns the destination address of a datagram from its
// IP_PKTINFO control message.
func pktinfoDst(oob []byte) (netip.Addr, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return netip.Addr{}, false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_PKTINFO && len(m.Data) >= unix.SizeofInet4Pktinfo {
			// struct in_pktinfo: ifindex, spec_dst, then the header's
			// destination address.
			return netip.AddrFrom4([4]byte(m.Data[8:12])), true
		}
	}
	return netip.Addr{}, false
}

// serveTCP accepts connections until the listener is closed, serving each
// on its own goroutine while fewer than MaxTCPConns are open.
func (d *DNSForwarder) serveTCP() {
	defer d.wg.Done()
	for {
		c, err := d.tcp.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			d.opts.Logger.Warn("DNS forwarder: accept", "err", err)
			time.Sleep(50 * time.Millisecond) // e.g. out of file descriptors
			continue
		}
		src := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr()
		dst := c.LocalAddr().(*net.TCPAddr).AddrPort().Addr()
		if !d.fromSandbox(src, dst) {
			c.Close()
			continue
		}
		select {
		case d.conns <- struct{}{}:
		default:
			c.Close() // overloaded
			continue
		}
		if !d.track(c, true) { // closing
			<-d.conns
			c.Close()
			continue
		}
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			defer func() { <-d.conns }()
			defer d.track(c, false)
			defer c.Close()
			d.serveConn(c)
		}()
	}
}

// serveConn answers length-prefixed queries one after another until the
// client goes quiet for dnsTCPIdle or sends something that is not a query.
func (d *DNSForwarder) serveConn(c *net.TCPConn) {
	for {
		c.SetReadDeadline(time.Now().Add(dnsTCPIdle))
		q, err := readStreamMsg(c)
		if err != nil || !isDNSQuery(q) {
			return
		}
		resp := d.relay(true, q)
		if resp == nil {
			return
		}
		c.SetWriteDeadline(time.Now().Add(d.opts.Timeout))
		if err := writeStreamMsg(c, resp); err != nil {
			return
		}
	}
}
