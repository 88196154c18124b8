package agent

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"lelantos.dev/lelantos/internal/engine"
)

// tunnelDialTimeout bounds the connection to a sandbox's port.
const tunnelDialTimeout = 10 * time.Second

// Tunnel returns the node's sandbox tunnel: an HTTP/1.1 CONNECT to
// "SANDBOX_ID:PORT" is answered 200 and joined to that port of that running
// sandbox, so that a control plane on another machine reaches sandboxes whose
// addresses are private to this node. Only sandboxes are reachable: the
// authority names a sandbox by its ID, never an address, and the node dials
// the sandbox's own address. An unknown or not running sandbox is 404, a bad
// authority 400; every other request goes to next. Serve it only behind the
// agent's mutual TLS.
func (s *Server) Tunnel(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			next.ServeHTTP(w, r)
			return
		}
		s.tunnel(w, r)
	})
}

// tunnel serves one CONNECT.
func (s *Server) tunnel(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor != 1 {
		http.Error(w, "the sandbox tunnel takes HTTP/1.1 CONNECT", http.StatusHTTPVersionNotSupported)
		return
	}
	id, portText, err := net.SplitHostPort(r.Host)
	port, perr := strconv.Atoi(portText)
	if err != nil || perr != nil || id == "" || port < 1 || port > 65535 {
		http.Error(w, fmt.Sprintf("tunnel: want CONNECT SANDBOX_ID:PORT, got %q", r.Host), http.StatusBadRequest)
		return
	}
	st, err := s.engine.Get(id)
	if err != nil || st.State != engine.StateRunning || st.Address == "" {
		http.Error(w, fmt.Sprintf("tunnel: no running sandbox %s on this node", id), http.StatusNotFound)
		return
	}
	d := net.Dialer{Timeout: tunnelDialTimeout}
	up, err := d.DialContext(r.Context(), "tcp", net.JoinHostPort(st.Address, strconv.Itoa(port)))
	if err != nil {
		http.Error(w, fmt.Sprintf("tunnel: sandbox %s port %d: %v", id, port, err), http.StatusBadGateway)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		up.Close()
		http.Error(w, "tunnel: the connection cannot be taken over", http.StatusInternalServerError)
		return
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		up.Close()
		return
	}
	if _, err := io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		conn.Close()
		up.Close()
		return
	}
	join(conn, buf, up)
}

// join copies between a hijacked client connection (with what its reader
// already buffered) and the sandbox's, until both directions end.
func join(client net.Conn, buf io.Reader, up net.Conn) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _ = io.Copy(up, io.MultiReader(buf, client))
		closeWrite(up)
	}()
	_, _ = io.Copy(client, up)
	closeWrite(client)
	wg.Wait()
	client.Close()
	up.Close()
}

// closeWrite half-closes c where it can (TCP, TLS), else closes it.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		return
	}
	c.Close()
}
