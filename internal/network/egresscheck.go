package network

import (
	"hash/fnv"
	"net/netip"
	"sync"
	"time"

	"github.com/ti-mo/conntrack"
)

// The egress checker's marks, in two bits of the packet and connection marks
// (checkMask). On a connection: checkPending while the kernel path waits for
// its name, checkAllowed and checkRefused once decided. On a packet the
// checker gives back: in the nat chain (EQ) checkPending and checkAllowed
// take the kernel path and checkRefused goes to the proxy; in the filter
// chain (EC) checkPending lets one packet without data through, checkAllowed
// and checkRefused decide the connection.
const (
	checkShift   = 26
	checkMask    = 3 << checkShift
	checkPending = 1 << checkShift
	checkAllowed = 2 << checkShift
	checkRefused = 3 << checkShift
)

// The hooks a queued packet comes from (NF_INET_*).
const (
	hookPrerouting = 0
	hookForward    = 2
)

// checkTick is how often the checker looks for heads that took too long.
const checkTick = 100 * time.Millisecond

// queueNumber is the netfilter queue a Manager with chain prefix uses: one
// per prefix, so that Managers on one host do not share one.
func queueNumber(prefix string) uint16 {
	h := fnv.New32a()
	h.Write([]byte(prefix))
	return uint16(h.Sum32()%0xfff0) + 16
}

// egressChecker is the egress proxy's kernel path. A sandbox's connection to
// port 80 or 443 of an address its DNS answers gave it for an allowed name is
// not redirected to the proxy: the kernel forwards it, and holds its first
// data packets in a netfilter queue until the checker has read the name they
// ask for (the same parsers as the proxy). An allowed connection is then
// marked in conntrack and forwarded by the kernel to its end; a refused one is
// reset. Every other connection (an address the sandbox chose itself, one
// already known when the checker started) goes to the proxy as before.
type egressChecker struct {
	p *EgressProxy
	q *nfqueue

	// pending are the connections on the kernel path whose name is not
	// read yet, or was read within the header timeout; only the receiving
	// goroutine touches it.
	pending map[flowKey]*pendingFlow

	mu      sync.Mutex         // guards allowed and ct
	allowed map[flowKey]string // connections allowed on the kernel path, with their name ("" by address)
	ct      *conntrack.Conn    // opened when first needed
	pruned  time.Time

	done chan struct{}
}

// pendingFlow is a connection on the kernel path waiting for its name.
type pendingFlow struct {
	next  uint32         // the sequence number of the next byte of its head
	head  []byte         // the bytes held so far, in order
	held  []queuedPacket // the queued packets that carry them, without their data
	since time.Time      // when it was seen first, or decided
	// verdict, once decided, is checkAllowed or checkRefused: packets queued
	// before the connection's mark was set get it too.
	verdict uint32
}

// startChecker binds the Manager's queue; nil when the host cannot (then
// every connection goes to the proxy).
func (p *EgressProxy) startChecker() *egressChecker {
	q, err := openNFQueue(queueNumber(p.m.cfg.ChainPrefix), uint32(p.opts.MaxConns))
	if err != nil {
		p.opts.Logger.Warn("egress proxy: no kernel path for checked connections; all go through the proxy", "err", err)
		return nil
	}
	c := &egressChecker{p: p, q: q, pending: make(map[flowKey]*pendingFlow),
		allowed: make(map[flowKey]string), done: make(chan struct{}), pruned: time.Now()}
	go c.run()
	return c
}

// run receives and decides until the queue is closed.
func (c *egressChecker) run() {
	defer close(c.done)
	for {
		pkts, err := c.q.receive(time.Now().Add(checkTick))
		if err != nil {
			return // closed
		}
		for _, pkt := range pkts {
			c.handle(pkt)
		}
		c.expire(time.Now())
	}
}

// close stops the checker; the kernel drops the packets it held.
func (c *egressChecker) close() {
	c.q.close()
	<-c.done
	c.mu.Lock()
	if c.ct != nil {
		c.ct.Close()
	}
	c.mu.Unlock()
}

// give releases a queued packet with the verdict mark.
func (c *egressChecker) give(pkt queuedPacket, mark uint32) {
	_ = c.q.verdict(pkt.id, nfRepeat, pkt.mark&^checkMask|mark)
}

func (c *egressChecker) handle(pkt queuedPacket) {
	seg, ok := parseTCP(pkt.data)
	switch {
	case !ok:
		_ = c.q.verdict(pkt.id, nfDrop, 0)
	case pkt.hook == hookPrerouting:
		c.give(pkt, c.route(seg))
	case pkt.hook == hookForward:
		c.check(pkt, seg)
	default:
		_ = c.q.verdict(pkt.id, nfDrop, 0)
	}
}

// route decides where a new connection goes: the kernel path (checkPending,
// or checkAllowed when its address alone allows it) or the proxy.
func (c *egressChecker) route(seg tcpSegment) uint32 {
	if seg.flags&(tcpSYN|tcpACK) != tcpSYN || len(seg.payload) != 0 || len(c.pending) >= c.p.opts.MaxConns {
		// Not a new connection, data in its SYN (which the kernel path
		// would let through unread), or too many: the proxy's to decide.
		return checkRefused
	}
	src, dst := seg.flow.src.Addr(), seg.flow.dst.Addr()
	pol, ok := c.p.m.policyAt(src)
	if !ok || !pol.allowInternet || c.p.guard.refuses(dst) {
		return checkRefused
	}
	if pol.egress.allowsAddr(dst) {
		c.remember(seg.flow, "")
		c.p.checked.Add(1)
		return checkAllowed
	}
	if !c.p.m.answers.answered(src, pol, dst) {
		return checkRefused
	}
	c.pending[seg.flow] = &pendingFlow{next: seg.seq + 1, since: time.Now()}
	return checkPending
}

// check reads the head of a connection on the kernel path, one data packet
// at a time, and decides it once the name is read.
func (c *egressChecker) check(pkt queuedPacket, seg tcpSegment) {
	f := c.pending[seg.flow]
	switch {
	case f != nil && f.verdict != 0:
		c.give(pkt, f.verdict)
		return
	case len(seg.payload) == 0:
		c.give(pkt, checkPending) // the handshake's end, a window update, a FIN
		return
	case f == nil:
		c.give(pkt, checkRefused) // data of a connection the checker does not know
		return
	case seg.seq != f.next:
		// A copy sent again, or data ahead of a gap: what the checker reads
		// must be exactly what the server will get first, so only the next
		// bytes in order are held; the sender sends the rest again.
		_ = c.q.verdict(pkt.id, nfDrop, 0)
		return
	}
	f.head = append(f.head, seg.payload...)
	f.held = append(f.held, queuedPacket{id: pkt.id, mark: pkt.mark})
	f.next += uint32(len(seg.payload))
	name, done := nameInHead(seg.flow.dst.Port(), f.head)
	if !done && len(f.head) < egressHeadLimit {
		return
	}
	c.decide(seg.flow, f, done && name != "" && c.stillAllowsName(seg.flow, name), name)
}

// stillAllowsName reports whether the rules of the moment of the sandbox
// that sent flow allow name.
func (c *egressChecker) stillAllowsName(flow flowKey, name string) bool {
	pol, ok := c.p.m.policyAt(flow.src.Addr())
	return ok && pol.allowInternet && pol.egress.allowsName(name)
}

// decide releases the packets held for f, allowed or refused.
func (c *egressChecker) decide(flow flowKey, f *pendingFlow, ok bool, name string) {
	mark := uint32(checkRefused)
	if ok {
		mark = checkAllowed
		c.remember(flow, name)
		c.p.checked.Add(1)
	} else {
		c.p.refused.Add(1)
	}
	for _, pkt := range f.held {
		c.give(pkt, mark)
	}
	f.verdict, f.since, f.head, f.held = mark, time.Now(), nil, nil
}

// expire refuses the connections whose head took longer than the proxy's
// HeaderTimeout, and now and then forgets allowed ones conntrack no longer
// knows.
func (c *egressChecker) expire(now time.Time) {
	for flow, f := range c.pending {
		if now.Sub(f.since) > c.p.opts.HeaderTimeout {
			if len(f.held) == 0 {
				delete(c.pending, flow) // decided, or never sent data
				continue
			}
			c.decide(flow, f, false, "")
		}
	}
	if now.Sub(c.pruned) > time.Minute {
		c.pruned = now
		c.prune()
	}
}

// remember notes an allowed connection, so that a rule change can cut it.
func (c *egressChecker) remember(flow flowKey, name string) {
	c.mu.Lock()
	c.allowed[flow] = name
	c.mu.Unlock()
}

// conntrackLocked returns the checker's conntrack connection, opening it
// when first needed. Call with c.mu held.
func (c *egressChecker) conntrackLocked() *conntrack.Conn {
	if c.ct == nil {
		ct, err := conntrack.Dial(nil)
		if err != nil {
			c.p.opts.Logger.Warn("egress proxy: conntrack", "err", err)
			return nil
		}
		c.ct = ct
	}
	return c.ct
}

// prune forgets the allowed connections that have ended.
func (c *egressChecker) prune() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.allowed) == 0 {
		return
	}
	ct := c.conntrackLocked()
	if ct == nil {
		return
	}
	flows, err := ct.DumpFilter(conntrack.NewFilter().Mark(checkAllowed).MarkMask(checkMask), nil)
	if err != nil {
		return
	}
	live := make(map[flowKey]bool, len(flows))
	for _, f := range flows {
		t := f.TupleOrig
		live[flowKey{src: netip.AddrPortFrom(t.IP.SourceAddress.Unmap(), t.Proto.SourcePort),
			dst: netip.AddrPortFrom(t.IP.DestinationAddress.Unmap(), t.Proto.DestinationPort)}] = true
	}
	for k := range c.allowed {
		if !live[k] {
			delete(c.allowed, k)
		}
	}
}

// recheck cuts the kernel-path connections of the sandbox at addr that its
// rules of the moment refuse: their conntrack entries are deleted, so their
// next packets are no longer forwarded (the sandbox's go to the proxy as
// unknown connections and are reset).
func (c *egressChecker) recheck(addr netip.Addr, pol sandboxPolicy, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for flow, name := range c.allowed {
		if flow.src.Addr() != addr {
			continue
		}
		if ok && pol.allowInternet && ((name != "" && pol.egress.allowsName(name)) ||
			(pol.egress.allowsAddr(flow.dst.Addr()) && !c.p.guard.refuses(flow.dst.Addr()))) {
			continue
		}
		delete(c.allowed, flow)
		if ct := c.conntrackLocked(); ct != nil {
			f := conntrack.NewFlow(6, 0, flow.src.Addr(), flow.dst.Addr(), flow.src.Port(), flow.dst.Port(), 0, 0)
			_ = ct.Delete(f)
		}
		c.p.cut.Add(1)
	}
}
