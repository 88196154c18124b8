package cluster

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
)

// Tunnel dials sandboxes of one node through its agent's sandbox tunnel: a
// TLS connection to the agent, an HTTP/1.1 CONNECT to "SANDBOX_ID:PORT", and
// the connection is then the sandbox port's.
type Tunnel struct {
	// Address is host:port of the node's agent.
	Address string
	// TLS dials the node as itself (clustertls.ClientConfig).
	TLS *tls.Config
}

// DialSandbox returns a connection to port of sandbox sandboxID on the
// node. A sandbox the node does not run is an error naming it.
func (t *Tunnel) DialSandbox(ctx context.Context, sandboxID string, port int) (net.Conn, error) {
	authority := net.JoinHostPort(sandboxID, strconv.Itoa(port))
	cfg := t.TLS.Clone()
	cfg.NextProtos = []string{"http/1.1"}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: dialTimeout}, Config: cfg}
	c, err := d.DialContext(ctx, "tcp", t.Address)
	if err != nil {
		return nil, fmt.Errorf("tunnel to %s via %s: %w", authority, t.Address, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	req := &http.Request{Method: http.MethodConnect, Host: authority, URL: nil, Header: http.Header{}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
	if _, err := io.WriteString(c, "CONNECT "+authority+" HTTP/1.1\r\nHost: "+authority+"\r\n\r\n"); err != nil {
		c.Close()
		return nil, fmt.Errorf("tunnel to %s via %s: %w", authority, t.Address, err)
	}
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, req)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("tunnel to %s via %s: %w", authority, t.Address, err)
	}
	if res.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		c.Close()
		return nil, fmt.Errorf("tunnel to %s via %s: %s: %s", authority, t.Address, res.Status, trim(msg))
	}
	if br.Buffered() == 0 {
		return c, nil
	}
	return &bufferedConn{Conn: c, r: br}, nil
}

// bufferedConn reads what the CONNECT's reader had buffered first.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// trim is a peer's message without its trailing newline.
func trim(b []byte) string {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return string(b)
}
