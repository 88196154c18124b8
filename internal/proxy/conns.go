package proxy

import (
	"context"
	"net"
	"sync"
)

// connSet remembers the open connections to each sandbox, so that those of a
// killed sandbox can be closed at once: the sandbox's end sends no FIN or RST
// when its network goes, and a stream on such a connection (a command's
// output, a file watch) would otherwise wait for bytes that never come. It is
// safe for concurrent use.
type connSet struct {
	mu    sync.Mutex
	conns map[string]map[*sandboxConn]struct{} // by sandbox ID
	// obs is told the bytes moved on the connections; nil: nobody.
	obs Observer
}

func newConnSet() *connSet { return &connSet{conns: map[string]map[*sandboxConn]struct{}{}} }

// sandboxConn is a connection to one sandbox that leaves its set when closed.
type sandboxConn struct {
	net.Conn
	set       *connSet
	sandboxID string
	once      sync.Once
	// obs, when set, is told the bytes read and written, as route kind kind.
	obs  Observer
	kind string
}

// Close closes the connection and forgets it.
func (c *sandboxConn) Close() error {
	c.once.Do(func() { c.set.remove(c) })
	return c.Conn.Close()
}

// dialer wraps dial so that every connection it makes for a request routed to
// a sandbox (the request's upstream, in the dial's context) is tracked.
func (s *connSet) dialer(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		up, ok := ctx.Value(upstreamKey{}).(*upstream)
		if !ok {
			return c, nil
		}
		sc := &sandboxConn{Conn: c, set: s, sandboxID: up.sandboxID, obs: s.obs, kind: routeKind(up.route)}
		s.mu.Lock()
		if s.conns[sc.sandboxID] == nil {
			s.conns[sc.sandboxID] = map[*sandboxConn]struct{}{}
		}
		s.conns[sc.sandboxID][sc] = struct{}{}
		s.mu.Unlock()
		return sc, nil
	}
}

// remove forgets c.
func (s *connSet) remove(c *sandboxConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns[c.sandboxID], c)
	if len(s.conns[c.sandboxID]) == 0 {
		delete(s.conns, c.sandboxID)
	}
}

// closeSandbox closes every connection to sandbox id, idle or carrying a
// request, and returns how many there were.
func (s *connSet) closeSandbox(id string) int {
	s.mu.Lock()
	conns := make([]*sandboxConn, 0, len(s.conns[id]))
	for c := range s.conns[id] {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	return len(conns)
}

// count returns the number of open connections to sandbox id.
func (s *connSet) count(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns[id])
}
