package network

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
)

// errHeadTooLarge ends a read past the limit of a recorder.
var errHeadTooLarge = errors.New("connection head too large")

// errNameRead stops the TLS handshake once the ClientHello has been read.
var errNameRead = errors.New("server name read")

// recorder reads from r and keeps every byte it read, up to limit, so that
// what was read to learn a connection's name can be sent on unchanged.
type recorder struct {
	r     io.Reader
	buf   []byte
	limit int
}

func (r *recorder) Read(p []byte) (int, error) {
	room := r.limit - len(r.buf)
	if room <= 0 {
		return 0, errHeadTooLarge
	}
	if len(p) > room {
		p = p[:room]
	}
	n, err := r.r.Read(p)
	r.buf = append(r.buf, p[:n]...)
	return n, err
}

// readOnlyConn is a connection whose reads are recorded and whose writes go
// nowhere: the TLS parser below may try to answer, the sandbox must not see it.
type readOnlyConn struct {
	net.Conn
	rec *recorder
}

func (c readOnlyConn) Read(p []byte) (int, error)  { return c.rec.Read(p) }
func (c readOnlyConn) Write(p []byte) (int, error) { return 0, net.ErrClosed }

// peekServerName reads a TLS ClientHello from c with the standard library's
// parser and returns its server name ("" when there is none or what came is
// not TLS) and every byte read.
func peekServerName(c net.Conn, limit int) (string, []byte) {
	rec := &recorder{r: c, limit: limit}
	var name string
	srv := tls.Server(readOnlyConn{Conn: c, rec: rec}, &tls.Config{
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			name = h.ServerName
			return nil, errNameRead
		},
	})
	_ = srv.Handshake() // always fails: errNameRead at best
	return strings.ToLower(name), rec.buf
}

// peekHost reads an HTTP request head from c with the standard library's
// parser and returns the host it names, without a port ("" when none or what
// came is not HTTP), and every byte read.
func peekHost(c net.Conn, limit int) (string, []byte) {
	rec := &recorder{r: c, limit: limit}
	req, err := http.ReadRequest(bufio.NewReader(rec))
	if err != nil {
		return "", rec.buf
	}
	host := req.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.ToLower(strings.TrimSuffix(host, ".")), rec.buf
}
