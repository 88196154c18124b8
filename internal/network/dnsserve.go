package network

import (
	"errors"
	"net"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// serveUDP reads queries until the socket is closed, relaying each on its
// own goroutine while fewer than MaxInFlight are in flight and its sandbox is
// within its limits; over them, it is refused or dropped.
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
		from := src.Addr().Unmap()
		switch d.limits.admit(from) {
		case refuseIt:
			d.count.refused.Add(1)
			d.answerUDP(errorReply(buf[:n], dnsRcodeRefused), src, dst)
			continue
		case dropIt:
			d.count.dropped.Add(1)
			continue
		}
		if !d.nameAllowed(from, buf[:n]) {
			d.limits.done(from)
			d.count.denied.Add(1)
			d.answerUDP(errorReply(buf[:n], dnsRcodeRefused), src, dst)
			continue
		}
		select {
		case d.query <- struct{}{}:
		default:
			d.limits.done(from)
			d.count.dropped.Add(1)
			continue // overloaded: drop it, the client retries
		}
		d.count.relayed.Add(1)
		q := append([]byte(nil), buf[:n]...)
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			defer func() { <-d.query }()
			defer d.limits.done(from)
			d.answerUDP(d.relayFor(from, false, q), src, dst)
		}()
	}
}

// answerUDP sends resp (if any) to src from dst, the address the query was sent
// to, so that conntrack maps it back to the resolver the sandbox asked.
func (d *DNSForwarder) answerUDP(resp []byte, src netip.AddrPort, dst netip.Addr) {
	if resp == nil {
		return
	}
	oob := unix.PktInfo4(&unix.Inet4Pktinfo{Spec_dst: dst.As4()})
	if _, _, err := d.udp.WriteMsgUDPAddrPort(resp, oob, src); err != nil && !errors.Is(err, net.ErrClosed) {
		d.opts.Logger.Debug("DNS forwarder: send UDP answer", "to", src, "err", err)
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
		src := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
		dst := c.LocalAddr().(*net.TCPAddr).AddrPort().Addr()
		if !d.fromSandbox(src, dst) {
			c.Close()
			continue
		}
		if !d.limits.openConn(src) {
			c.Close() // the sandbox has all the connections it may have
			continue
		}
		select {
		case d.conns <- struct{}{}:
		default:
			d.limits.closeConn(src)
			c.Close() // overloaded
			continue
		}
		if !d.track(c, true) { // closing
			<-d.conns
			d.limits.closeConn(src)
			c.Close()
			continue
		}
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			defer func() { <-d.conns }()
			defer d.limits.closeConn(src)
			defer d.track(c, false)
			defer c.Close()
			d.serveConn(c, src)
		}()
	}
}

// serveConn answers length-prefixed queries from src one after another until
// the client goes quiet for dnsTCPIdle, sends something that is not a query,
// or is over its limits by more than refusals cover.
func (d *DNSForwarder) serveConn(c *net.TCPConn, src netip.Addr) {
	for {
		c.SetReadDeadline(time.Now().Add(dnsTCPIdle))
		q, err := readStreamMsg(c)
		if err != nil || !isDNSQuery(q) {
			return
		}
		var resp []byte
		switch d.limits.admit(src) {
		case relayIt:
			if !d.nameAllowed(src, q) {
				d.count.denied.Add(1)
				resp = errorReply(q, dnsRcodeRefused)
			} else {
				d.count.relayed.Add(1)
				resp = d.relayFor(src, true, q)
			}
			d.limits.done(src)
		case refuseIt:
			d.count.refused.Add(1)
			resp = errorReply(q, dnsRcodeRefused)
		case dropIt:
			d.count.dropped.Add(1)
		}
		if resp == nil {
			return
		}
		c.SetWriteDeadline(time.Now().Add(d.opts.Timeout))
		if err := writeStreamMsg(c, resp); err != nil {
			return
		}
	}
}
