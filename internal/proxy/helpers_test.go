package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// fakeResolver maps sandbox IDs to targets; unknown IDs get err, or a
// wrapped ErrSandboxNotFound when err is nil.
type fakeResolver struct {
	targets map[string]Target
	err     error
}

func (f fakeResolver) ResolveSandbox(_ context.Context, id string) (Target, error) {
	if t, ok := f.targets[id]; ok {
		return t, nil
	}
	if f.err != nil {
		return Target{}, f.err
	}
	return Target{}, fmt.Errorf("resolve sandbox %s: %w", id, ErrSandboxNotFound)
}

// quietLogger drops the proxy's diagnostics unless -v is given.
func quietLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func newTestProxy(t testing.TB, cfg Config, r Resolver) *Proxy {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quietLogger(t)
	}
	p, err := New(cfg, r)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

// serveProxy runs p.Serve (or ServeTLS) on a loopback listener until the
// test ends, checks that it shut down cleanly, and returns its address.
func serveProxy(t testing.TB, p *Proxy, useTLS bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		if useTLS {
			done <- p.ServeTLS(ctx, ln)
		} else {
			done <- p.Serve(ctx, ln)
		}
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve returned %v after shutdown, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("serve did not return after shutdown")
		}
	})
	return ln.Addr().String()
}

// backend starts an HTTP server on 127.0.0.1 standing in for a sandbox port
// and returns its port.
func backend(t testing.TB, h http.Handler) int {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return portOf(t, srv.Listener.Addr())
}

func portOf(t testing.TB, a net.Addr) int {
	t.Helper()
	_, p, err := net.SplitHostPort(a.String())
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// envdBackend serves h on port EnvdPort of a random 127.0.0.0/8 address,
// so that tests can run next to other listeners of that port, and returns
// the address (no port).
func envdBackend(t testing.TB, h http.Handler) string {
	t.Helper()
	for range 50 {
		ip := fmt.Sprintf("127.%d.%d.%d", rand.IntN(254)+1, rand.IntN(256), rand.IntN(254)+1)
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(EnvdPort)))
		if errors.Is(err, syscall.EADDRINUSE) {
			continue
		}
		if err != nil {
			t.Fatalf("listen on %s:%d: %v", ip, EnvdPort, err)
		}
		srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: h}}
		srv.Start()
		t.Cleanup(srv.Close)
		return ip
	}
	t.Fatal("no free 127.0.0.0/8 address for port 49983")
	return ""
}

// closedPort returns a loopback port on which nothing listens.
func closedPort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := portOf(t, ln.Addr())
	ln.Close()
	return port
}

// proxyClient is an HTTP client whose connections all go to the proxy at
// addr, whatever the URL's host; with caPEM it speaks TLS trusting that CA.
func proxyClient(t testing.TB, addr string, caPEM []byte, h2 bool) *http.Client {
	t.Helper()
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
		DisableCompression:  true,
		MaxIdleConnsPerHost: 16,
		ReadBufferSize:      64 << 10,
		WriteBufferSize:     64 << 10,
	}
	if caPEM != nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			t.Fatal("bad CA PEM")
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetHTTP1(!h2)
		tr.Protocols.SetHTTP2(h2)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// readAll reads and closes a response body.
func readAll(t testing.TB, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return string(b)
}
