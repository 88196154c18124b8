package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Server limits. There is deliberately no read or write timeout: streams and
// websockets live as long as the client wants.
const (
	readHeaderTimeout = 30 * time.Second
	idleTimeout       = 2 * time.Minute
	shutdownTimeout   = 5 * time.Second
	// h2 flow-control windows: large enough that one stream can move
	// hundreds of MB/s, bounded so that a slow sandbox cannot make the
	// proxy hold much memory per client.
	h2StreamWindow = 4 << 20
	h2ConnWindow   = 16 << 20
)

// ErrNoTLS is returned by ServeTLS and TLSConfig when the proxy has no
// certificate (Config.Domain or Config.TLSDir was empty).
var ErrNoTLS = errors.New("proxy has no TLS certificate: set Config.Domain and Config.TLSDir")

// CAPath returns the path of the CA certificate (PEM) that clients must
// trust, e.g. through NODE_EXTRA_CA_CERTS, or "" when the proxy has no TLS.
func (p *Proxy) CAPath() string {
	if p.certs == nil {
		return ""
	}
	return p.certs.caPath()
}

// TLSConfig returns a TLS configuration serving the certificate for *.D and
// D, offering HTTP/2 and HTTP/1.1 through ALPN.
func (p *Proxy) TLSConfig() (*tls.Config, error) {
	if p.certs == nil {
		return nil, ErrNoTLS
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: p.certs.getCertificate,
		NextProtos:     []string{"h2", "http/1.1"},
	}, nil
}

// Serve serves plain HTTP/1.1 on ln until ctx ends, then shuts down
// gracefully and returns nil. Other failures of the listener are returned.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener) error {
	srv := p.newServer()
	return p.run(ctx, srv, func() error { return srv.Serve(ln) })
}

// ServeTLS serves HTTPS (HTTP/2 and HTTP/1.1 by ALPN) on ln until ctx ends,
// then shuts down gracefully and returns nil. It needs a domain and a TLS
// directory, else it returns ErrNoTLS.
func (p *Proxy) ServeTLS(ctx context.Context, ln net.Listener) error {
	cfg, err := p.TLSConfig()
	if err != nil {
		return fmt.Errorf("serve tls: %w", err)
	}
	srv := p.newServer()
	srv.TLSConfig = cfg
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetHTTP2(true)
	srv.HTTP2 = &http.HTTP2Config{
		MaxReceiveBufferPerStream:     h2StreamWindow,
		MaxReceiveBufferPerConnection: h2ConnWindow,
	}
	return p.run(ctx, srv, func() error { return srv.ServeTLS(ln, "", "") })
}

func (p *Proxy) newServer() *http.Server {
	return &http.Server{
		Handler:           p,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		// Handshake failures and client resets are routine for a proxy.
		ErrorLog: slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
	}
}

// run runs serve until it fails or ctx ends; on ctx's end it shuts srv
// down, waiting up to shutdownTimeout for requests in flight.
func (p *Proxy) run(ctx context.Context, srv *http.Server, serve func() error) error {
	errc := make(chan error, 1)
	go func() { errc <- serve() }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve proxy: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve proxy: %w", err)
	}
	return nil
}
