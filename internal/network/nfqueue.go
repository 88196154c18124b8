package network

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The netfilter queue protocol (linux/netfilter/nfnetlink_queue.h): message
// types of the queue subsystem, and the attributes this client reads and writes.
const (
	nfnlSubsysQueue = 3

	nfqnlMsgPacket  = 0
	nfqnlMsgVerdict = 1
	nfqnlMsgConfig  = 2

	nfqaCfgCmd         = 1
	nfqaCfgParams      = 2
	nfqaCfgQueueMaxlen = 3

	nfqnlCfgCmdBind = 1
	nfqnlCopyPacket = 2

	nfqaPacketHdr  = 1
	nfqaVerdictHdr = 2
	nfqaMark       = 3
	nfqaPayload    = 10

	nfDrop   = 0
	nfRepeat = 4
)

// queuedPacket is one packet the kernel handed to the queue.
type queuedPacket struct {
	id   uint32
	mark uint32
	hook uint8  // the netfilter hook it was queued from (NF_INET_*)
	data []byte // the IPv4 packet, headers included
}

// nfqueue is a client of one netfilter queue: it binds it, receives the
// packets rules send to it and gives each a verdict. Packets it never gives a
// verdict stay held in the kernel, up to the queue's length. It is not safe
// for concurrent use: one goroutine receives and answers.
type nfqueue struct {
	c   *netlink.Conn
	num uint16
}

// openNFQueue binds queue num in the current network namespace, copying whole
// packets of at most maxLen bytes and holding at most held of them.
func openNFQueue(num uint16, held uint32) (*nfqueue, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return nil, fmt.Errorf("open netfilter queue %d: %w", num, err)
	}
	q := &nfqueue{c: c, num: num}
	_ = c.SetOption(netlink.NoENOBUFS, true)
	_ = c.SetReadBuffer(4 << 20)
	cmd := make([]byte, 4)
	cmd[0] = nfqnlCfgCmdBind
	binary.BigEndian.PutUint16(cmd[2:], unix.AF_INET)
	params := make([]byte, 5)
	binary.BigEndian.PutUint32(params, 0xffff)
	params[4] = nfqnlCopyPacket
	maxlen := binary.BigEndian.AppendUint32(nil, held)
	for _, a := range []struct {
		typ  uint16
		data []byte
	}{{nfqaCfgCmd, cmd}, {nfqaCfgParams, params}, {nfqaCfgQueueMaxlen, maxlen}} {
		ae := netlink.NewAttributeEncoder()
		ae.Bytes(a.typ, a.data)
		if err := q.execute(nfqnlMsgConfig, ae); err != nil {
			c.Close()
			return nil, fmt.Errorf("configure netfilter queue %d: %w", num, err)
		}
	}
	return q, nil
}

// message frames attributes as a queue message of type typ.
func (q *nfqueue) message(typ uint8, ae *netlink.AttributeEncoder, flags netlink.HeaderFlags) (netlink.Message, error) {
	attrs, err := ae.Encode()
	if err != nil {
		return netlink.Message{}, err
	}
	hdr := []byte{unix.AF_UNSPEC, 0, 0, 0} // struct nfgenmsg: family, version, queue
	binary.BigEndian.PutUint16(hdr[2:], q.num)
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(nfnlSubsysQueue<<8 | uint16(typ)), Flags: flags},
		Data:   append(hdr, attrs...),
	}, nil
}

// execute sends a request and waits for the kernel's acknowledgement.
func (q *nfqueue) execute(typ uint8, ae *netlink.AttributeEncoder) error {
	m, err := q.message(typ, ae, netlink.Request|netlink.Acknowledge)
	if err != nil {
		return err
	}
	_, err = q.c.Execute(m)
	return err
}

// receive waits until deadline for packets; a deadline that passes returns
// no packets and no error.
func (q *nfqueue) receive(deadline time.Time) ([]queuedPacket, error) {
	_ = q.c.SetReadDeadline(deadline)
	msgs, err := q.c.Receive()
	if err != nil {
		var ne interface{ Timeout() bool }
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, nil
		}
		if errors.Is(err, unix.ENOBUFS) {
			return nil, nil // packets were lost; their senders send them again
		}
		return nil, fmt.Errorf("receive from netfilter queue %d: %w", q.num, err)
	}
	var out []queuedPacket
	for _, m := range msgs {
		if m.Header.Type != netlink.HeaderType(nfnlSubsysQueue<<8|nfqnlMsgPacket) || len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			continue
		}
		var p queuedPacket
		var ok bool
		for ad.Next() {
			switch b := ad.Bytes(); ad.Type() {
			case nfqaPacketHdr:
				if len(b) >= 7 { // struct nfqnl_msg_packet_hdr: id, hw_protocol, hook
					p.id, p.hook, ok = binary.BigEndian.Uint32(b), b[6], true
				}
			case nfqaMark:
				if len(b) >= 4 {
					p.mark = binary.BigEndian.Uint32(b)
				}
			case nfqaPayload:
				p.data = b
			}
		}
		if ok && ad.Err() == nil {
			out = append(out, p)
		}
	}
	return out, nil
}

// verdict gives packet id the verdict v (nfDrop or nfRepeat); with nfRepeat
// the packet is given mark and goes through its hook's rules again.
func (q *nfqueue) verdict(id uint32, v uint32, mark uint32) error {
	hdr := make([]byte, 8)
	binary.BigEndian.PutUint32(hdr, v)
	binary.BigEndian.PutUint32(hdr[4:], id)
	ae := netlink.NewAttributeEncoder()
	ae.Bytes(nfqaVerdictHdr, hdr)
	if v == nfRepeat {
		ae.Bytes(nfqaMark, binary.BigEndian.AppendUint32(nil, mark))
	}
	m, err := q.message(nfqnlMsgVerdict, ae, netlink.Request)
	if err != nil {
		return err
	}
	if _, err := q.c.Send(m); err != nil {
		return fmt.Errorf("verdict on netfilter queue %d: %w", q.num, err)
	}
	return nil
}

// close unbinds the queue: packets still held are dropped by the kernel.
func (q *nfqueue) close() error { return q.c.Close() }
