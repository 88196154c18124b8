package proxy

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"time"
)

// Transport tuning. Sandboxes are on the same host or a near network, so
// dials are fast and connections are worth keeping.
const (
	dialTimeout         = 10 * time.Second
	tcpKeepAlive        = 30 * time.Second
	idleConnTimeout     = 90 * time.Second
	maxIdleConns        = 1024
	maxIdleConnsPerHost = 128
	// connBufferSize is the bufio size of each upstream connection, each
	// way, and copyBufferSize the pooled buffer a response body is copied
	// with. An open stream holds both for its whole life, so they stay
	// moderate: large bodies bypass bufio anyway, and on loopback these
	// sizes already move well over 1 GB/s (see BenchmarkProxyDownload).
	connBufferSize = 32 << 10
	copyBufferSize = 64 << 10
)

// newTransport returns the HTTP/1.1 transport to sandboxes: no proxy from
// the environment, no compression (bodies pass as they are), connection
// reuse, moderate buffers, and no timeout on response headers or bodies since
// streams may stay open for as long as the sandbox lives.
func newTransport() *http.Transport {
	d := &net.Dialer{Timeout: dialTimeout, KeepAlive: tcpKeepAlive}
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		MaxIdleConns:          maxIdleConns,
		MaxIdleConnsPerHost:   maxIdleConnsPerHost,
		IdleConnTimeout:       idleConnTimeout,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
		ReadBufferSize:        connBufferSize,
		WriteBufferSize:       connBufferSize,
		// Only Target.HTTPSPorts are reached over TLS; their certificates
		// are the sandbox's own, often self-signed.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	}
}

// tunnelHostSuffix ends the host name under which the transport pools the
// connections to a sandbox reached through a Tunnel.
const tunnelHostSuffix = ".tunnel.invalid"

// tunnelled wraps dial so that a request routed to a sandbox with a Tunnel
// (the request's upstream, in the dial's context) is dialled through it.
func tunnelled(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		up, ok := ctx.Value(upstreamKey{}).(*upstream)
		if !ok || up.tunnel == nil {
			return dial(ctx, network, addr)
		}
		return up.tunnel.DialSandbox(ctx, up.sandboxID, up.port)
	}
}

// bufferPool lends ReverseProxy its copy buffers so that a response does not
// allocate a large buffer. It satisfies httputil.BufferPool.
type bufferPool struct {
	pool sync.Pool
}

func newBufferPool(size int) *bufferPool {
	return &bufferPool{pool: sync.Pool{New: func() any {
		b := make([]byte, size)
		return &b
	}}}
}

// Get returns a buffer of the pool's size.
func (p *bufferPool) Get() []byte {
	return *p.pool.Get().(*[]byte)
}

// Put returns b to the pool. Boxing the slice header costs a few bytes; the
// buffer itself is reused.
func (p *bufferPool) Put(b []byte) {
	p.pool.Put(&b)
}
