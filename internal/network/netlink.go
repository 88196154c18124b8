package network

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"
)

// rtnl is a minimal rtnetlink client. A netlink socket belongs to the network
// namespace it was created in, whatever thread later uses it. Not safe for
// concurrent use.
type rtnl struct {
	fd  int
	seq uint32
	buf []byte
}

// vethInfoPeer is VETH_INFO_PEER from linux/veth.h.
const vethInfoPeer = 1

// errNoDevice reports a link that does not exist.
var errNoDevice = errors.New("no such network device")

func openRTNL() (*rtnl, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open netlink socket: %w", err)
	}
	// Errors come back with the kernel's message, without the request echoed.
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_EXT_ACK, 1)
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
	tv := unix.Timeval{Sec: 10}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("set netlink timeout: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind netlink socket: %w", err)
	}
	return &rtnl{fd: fd, buf: make([]byte, 32<<10)}, nil
}

func (r *rtnl) Close() error { return unix.Close(r.fd) }

// nlmsg builds one netlink request.
type nlmsg struct{ b []byte }

func newMsg(typ, flags uint16, fixed []byte) *nlmsg {
	m := &nlmsg{b: make([]byte, unix.SizeofNlMsghdr, 256)}
	binary.NativeEndian.PutUint16(m.b[4:], typ)
	binary.NativeEndian.PutUint16(m.b[6:], flags|unix.NLM_F_REQUEST)
	m.b = append(m.b, fixed...)
	m.pad()
	return m
}

func (m *nlmsg) pad() {
	for len(m.b)%4 != 0 {
		m.b = append(m.b, 0)
	}
}

func (m *nlmsg) attr(typ uint16, data []byte) {
	var h [4]byte
	binary.NativeEndian.PutUint16(h[0:], uint16(4+len(data)))
	binary.NativeEndian.PutUint16(h[2:], typ)
	m.b = append(m.b, h[:]...)
	m.b = append(m.b, data...)
	m.pad()
}

func (m *nlmsg) u32(typ uint16, v uint32) {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], v)
	m.attr(typ, b[:])
}

func (m *nlmsg) str(typ uint16, s string) { m.attr(typ, append([]byte(s), 0)) }

// nest starts a nested attribute; end closes it.
func (m *nlmsg) nest(typ uint16) int {
	pos := len(m.b)
	m.attr(typ|unix.NLA_F_NESTED, nil)
	return pos
}

func (m *nlmsg) end(pos int) {
	binary.NativeEndian.PutUint16(m.b[pos:], uint16(len(m.b)-pos))
}

// ifinfo encodes a struct ifinfomsg.
func ifinfo(index int32, flags, change uint32) []byte {
	b := make([]byte, unix.SizeofIfInfomsg)
	b[0] = unix.AF_UNSPEC
	binary.NativeEndian.PutUint32(b[4:], uint32(index))
	binary.NativeEndian.PutUint32(b[8:], flags)
	binary.NativeEndian.PutUint32(b[12:], change)
	return b
}

// do sends m and waits for its acknowledgement or, for requests without
// NLM_F_ACK, its single reply, whose payload it returns.
func (r *rtnl) do(m *nlmsg) ([]byte, error) {
	r.seq++
	binary.NativeEndian.PutUint32(m.b[0:], uint32(len(m.b)))
	binary.NativeEndian.PutUint32(m.b[8:], r.seq)
	if err := unix.Sendto(r.fd, m.b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("netlink send: %w", err)
	}
	for {
		n, _, err := unix.Recvfrom(r.fd, r.buf, 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return nil, fmt.Errorf("netlink receive: %w", err)
		}
		for b := r.buf[:n]; len(b) >= unix.SizeofNlMsghdr; {
			l := int(binary.NativeEndian.Uint32(b[0:]))
			if l < unix.SizeofNlMsghdr || l > len(b) {
				return nil, errors.New("netlink: truncated message")
			}
			typ := binary.NativeEndian.Uint16(b[4:])
			seq := binary.NativeEndian.Uint32(b[8:])
			payload := b[unix.SizeofNlMsghdr:l]
			if next := (l + 3) &^ 3; next < len(b) {
				b = b[next:]
			} else {
				b = nil
			}
			if seq != r.seq {
				continue
			}
			if typ != unix.NLMSG_ERROR {
				return append([]byte(nil), payload...), nil
			}
			return nil, parseNlError(payload)
		}
	}
}

// parseNlError decodes an NLMSG_ERROR payload; code 0 is an acknowledgement.
func parseNlError(p []byte) error {
	if len(p) < 4 {
		return errors.New("netlink: short error message")
	}
	code := int32(binary.NativeEndian.Uint32(p))
	if code == 0 {
		return nil
	}
	errno := unix.Errno(-code)
	// With NETLINK_CAP_ACK the original header (16 bytes) follows; then the
	// extended-ack attributes.
	if len(p) >= 4+unix.SizeofNlMsghdr {
		for a := p[4+unix.SizeofNlMsghdr:]; len(a) >= 4; {
			l := int(binary.NativeEndian.Uint16(a))
			typ := binary.NativeEndian.Uint16(a[2:])
			if l < 4 || l > len(a) {
				break
			}
			if typ == unix.NLMSGERR_ATTR_MSG && l > 5 {
				return fmt.Errorf("%w (%s)", errno, string(a[4:l-1]))
			}
			a = a[min((l+3)&^3, len(a)):]
		}
	}
	return errno
}

// linkIndex returns the index of the link called name.
func (r *rtnl) linkIndex(name string) (int32, error) {
	m := newMsg(unix.RTM_GETLINK, 0, ifinfo(0, 0, 0))
	m.str(unix.IFLA_IFNAME, name)
	p, err := r.do(m)
	if errors.Is(err, unix.ENODEV) {
		return 0, fmt.Errorf("link %s: %w", name, errNoDevice)
	}
	if err != nil {
		return 0, fmt.Errorf("get link %s: %w", name, err)
	}
	if len(p) < unix.SizeofIfInfomsg {
		return 0, fmt.Errorf("get link %s: short reply", name)
	}
	return int32(binary.NativeEndian.Uint32(p[4:])), nil
}

// createVeth creates the veth host<->peer with the peer placed directly in
// the namespace open as peerNS. Both ends start down.
func (r *rtnl) createVeth(host, peer string, peerNS int, group uint32, mtu int) error {
	m := newMsg(unix.RTM_NEWLINK, unix.NLM_F_ACK|unix.NLM_F_CREATE|unix.NLM_F_EXCL, ifinfo(0, 0, 0))
	m.str(unix.IFLA_IFNAME, host)
	m.u32(unix.IFLA_GROUP, group)
	if mtu > 0 {
		m.u32(unix.IFLA_MTU, uint32(mtu))
	}
	li := m.nest(unix.IFLA_LINKINFO)
	m.str(unix.IFLA_INFO_KIND, "veth")
	data := m.nest(unix.IFLA_INFO_DATA)
	pi := len(m.b)
	m.attr(vethInfoPeer, ifinfo(0, 0, 0))
	m.str(unix.IFLA_IFNAME, peer)
	m.u32(unix.IFLA_NET_NS_FD, uint32(peerNS))
	if mtu > 0 {
		m.u32(unix.IFLA_MTU, uint32(mtu))
	}
	m.end(pi)
	m.end(data)
	m.end(li)
	if _, err := r.do(m); err != nil {
		return fmt.Errorf("create veth %s: %w", host, err)
	}
	return nil
}

// setLink brings a link up and, when group is not nil, sets its device group.
func (r *rtnl) setLink(index int32, up bool, group *uint32) error {
	var flags uint32
	if up {
		flags = unix.IFF_UP
	}
	m := newMsg(unix.RTM_NEWLINK, unix.NLM_F_ACK, ifinfo(index, flags, unix.IFF_UP))
	if group != nil {
		m.u32(unix.IFLA_GROUP, *group)
	}
	if _, err := r.do(m); err != nil {
		return fmt.Errorf("set link %d: %w", index, err)
	}
	return nil
}

// setGroup changes only the device group of the link called name.
func (r *rtnl) setGroup(name string, group uint32) error {
	m := newMsg(unix.RTM_NEWLINK, unix.NLM_F_ACK, ifinfo(0, 0, 0))
	m.str(unix.IFLA_IFNAME, name)
	m.u32(unix.IFLA_GROUP, group)
	_, err := r.do(m)
	if errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("link %s: %w", name, errNoDevice)
	}
	if err != nil {
		return fmt.Errorf("set group of %s: %w", name, err)
	}
	return nil
}

// addAddr adds addr/plen to a link.
func (r *rtnl) addAddr(index int32, addr netip.Addr, plen int) error {
	fixed := make([]byte, unix.SizeofIfAddrmsg)
	fixed[0] = unix.AF_INET
	fixed[1] = byte(plen)
	fixed[3] = unix.RT_SCOPE_UNIVERSE
	binary.NativeEndian.PutUint32(fixed[4:], uint32(index))
	m := newMsg(unix.RTM_NEWADDR, unix.NLM_F_ACK|unix.NLM_F_CREATE|unix.NLM_F_EXCL, fixed)
	a := addr.As4()
	m.attr(unix.IFA_LOCAL, a[:])
	m.attr(unix.IFA_ADDRESS, a[:])
	if _, err := r.do(m); err != nil {
		return fmt.Errorf("add address %s/%d: %w", addr, plen, err)
	}
	return nil
}

// addDefaultRoute adds "default via gw dev oif" to the main table.
func (r *rtnl) addDefaultRoute(gw netip.Addr, oif int32) error {
	fixed := make([]byte, unix.SizeofRtMsg)
	fixed[0] = unix.AF_INET
	fixed[4] = unix.RT_TABLE_MAIN
	fixed[5] = unix.RTPROT_BOOT
	fixed[6] = unix.RT_SCOPE_UNIVERSE
	fixed[7] = unix.RTN_UNICAST
	m := newMsg(unix.RTM_NEWROUTE, unix.NLM_F_ACK|unix.NLM_F_CREATE|unix.NLM_F_EXCL, fixed)
	g := gw.As4()
	m.attr(unix.RTA_GATEWAY, g[:])
	m.u32(unix.RTA_OIF, uint32(oif))
	if _, err := r.do(m); err != nil {
		return fmt.Errorf("add default route via %s: %w", gw, err)
	}
	return nil
}

// deleteLink deletes the link called name; a missing link is not an error.
func (r *rtnl) deleteLink(name string) error {
	m := newMsg(unix.RTM_DELLINK, unix.NLM_F_ACK, ifinfo(0, 0, 0))
	m.str(unix.IFLA_IFNAME, name)
	_, err := r.do(m)
	if err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	return nil
}

// writeSysctl writes a /proc/sys file of the calling thread's namespace.
func writeSysctl(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
