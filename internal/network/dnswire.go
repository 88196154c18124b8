package network

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"
)

// DNS message facts (RFC 1035 section 4.1.1). The forwarder relays messages
// as they are; it reads only the header and, to build SERVFAIL, the question.
const (
	dnsHeaderLen    = 12
	dnsMaxMessage   = 65535
	dnsFlagQR       = 0x80 // in byte 2: the message is a response
	dnsFlagTC       = 0x02 // in byte 2: the message is truncated
	dnsRcodeFail    = 2    // SERVFAIL
	dnsRcodeRefused = 5    // REFUSED
)

// errBadAnswer reports an upstream reply that does not answer the query.
var errBadAnswer = errors.New("upstream reply does not answer the query")

// isDNSQuery reports whether msg has a DNS header and is not a response.
func isDNSQuery(msg []byte) bool {
	return len(msg) >= dnsHeaderLen && msg[2]&dnsFlagQR == 0
}

// truncated reports whether a response has the TC flag.
func truncated(resp []byte) bool { return len(resp) >= dnsHeaderLen && resp[2]&dnsFlagTC != 0 }

// answers reports whether resp is a response to query (same ID).
func answers(query, resp []byte) bool {
	return len(resp) >= dnsHeaderLen && resp[2]&dnsFlagQR != 0 &&
		resp[0] == query[0] && resp[1] == query[1]
}

// errorReply builds a response to query with rcode (SERVFAIL, REFUSED),
// echoing its single question, or returns nil when the query is not
// well-formed enough for that.
func errorReply(query []byte, rcode byte) []byte {
	if !isDNSQuery(query) || binary.BigEndian.Uint16(query[4:]) != 1 {
		return nil
	}
	end, ok := skipName(query, dnsHeaderLen)
	if !ok || end+4 > len(query) {
		return nil
	}
	end += 4 // QTYPE, QCLASS
	resp := append([]byte(nil), query[:end]...)
	resp[2] = (resp[2] | dnsFlagQR) &^ 0x06 // keep opcode and RD; clear AA, TC
	resp[3] = 0x80 | rcode                  // RA, the error
	clear(resp[6:dnsHeaderLen])             // no answer, authority or additional records
	return resp
}

// questionName returns the name the single question of query asks for,
// lower-case and without the root's dot. Names it cannot read plainly
// (compression pointers, dots or odd bytes inside labels) are not returned.
func questionName(query []byte) (string, bool) {
	if !isDNSQuery(query) || binary.BigEndian.Uint16(query[4:]) != 1 {
		return "", false
	}
	var b strings.Builder
	for off := dnsHeaderLen; off < len(query); {
		l := int(query[off])
		if l == 0 {
			return strings.ToLower(b.String()), b.Len() > 0
		}
		if l > 63 || off+1+l > len(query) {
			return "", false
		}
		label := query[off+1 : off+1+l]
		for _, c := range label {
			if c <= ' ' || c == '.' || c >= 0x7f {
				return "", false
			}
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.Write(label)
		off += 1 + l
	}
	return "", false
}

// skipName returns the offset just past the domain name at off.
func skipName(msg []byte, off int) (int, bool) {
	for off < len(msg) {
		l := int(msg[off])
		switch {
		case l == 0:
			return off + 1, true
		case l&0xc0 == 0xc0: // compression pointer ends the name
			return off + 2, off+2 <= len(msg)
		case l > 63:
			return 0, false
		}
		off += 1 + l
	}
	return 0, false
}

// readResolvConf returns the nameservers of a resolv.conf file, on port 53.
func readResolvConf(path string) ([]netip.AddrPort, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseResolvConf(f)
}

// parseResolvConf reads the nameserver lines of resolv.conf text; malformed
// addresses are skipped, as the C library does.
func parseResolvConf(r io.Reader) ([]netip.AddrPort, error) {
	var out []netip.AddrPort
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		if a, err := netip.ParseAddr(f[1]); err == nil {
			out = append(out, netip.AddrPortFrom(a, dnsPort))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read resolv.conf: %w", err)
	}
	return out, nil
}

// exchange sends query to one upstream over network ("udp" or "tcp") and
// returns its answer, waiting at most timeout.
func exchange(ctx context.Context, network string, up netip.AddrPort, query []byte, timeout time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, network, up.String())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if network == "tcp" {
		return exchangeStream(c, query)
	}
	if _, err := c.Write(query); err != nil {
		return nil, err
	}
	buf := make([]byte, dnsMaxMessage)
	for {
		// A connected socket only receives from the upstream; skip stray
		// datagrams (e.g. a late answer to an earlier try) until ours comes.
		n, err := c.Read(buf)
		if err != nil {
			return nil, err
		}
		if answers(query, buf[:n]) {
			return append([]byte(nil), buf[:n]...), nil
		}
	}
}

// exchangeStream sends one length-prefixed query on a stream and reads the
// answer (RFC 1035 section 4.2.2).
func exchangeStream(c io.ReadWriter, query []byte) ([]byte, error) {
	if err := writeStreamMsg(c, query); err != nil {
		return nil, err
	}
	resp, err := readStreamMsg(c)
	if err != nil {
		return nil, err
	}
	if !answers(query, resp) {
		return nil, errBadAnswer
	}
	return resp, nil
}

func readStreamMsg(r io.Reader) ([]byte, error) {
	var l [2]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, err
	}
	msg := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(r, msg); err != nil {
		return nil, err
	}
	return msg, nil
}

func writeStreamMsg(w io.Writer, msg []byte) error {
	if len(msg) > dnsMaxMessage {
		return fmt.Errorf("DNS message of %d bytes is too long", len(msg))
	}
	buf := make([]byte, 2+len(msg))
	binary.BigEndian.PutUint16(buf, uint16(len(msg)))
	copy(buf[2:], msg)
	_, err := w.Write(buf)
	return err
}
