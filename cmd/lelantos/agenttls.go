package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"lelantos.dev/lelantos/internal/clustertls"
)

// serveAgentTLS serves h (the agent RPC and the node's sandbox tunnel) on
// cfg.AgentListen over TLS that requires a control-plane certificate of the
// cluster CA in cfg.AgentTLSDir; nil, nil when no address is set. HTTP/2 is
// offered for the RPC; the tunnel's CONNECT takes HTTP/1.1.
func serveAgentTLS(cfg nodeConfig, h http.Handler) (*http.Server, error) {
	if cfg.AgentListen == "" {
		return nil, nil
	}
	name := cfg.AgentCertName
	if name == "" {
		name = clustertls.NodeName
	}
	tc, err := clustertls.ServerConfigFromDir(cfg.AgentTLSDir, name, clustertls.RoleControlPlane)
	if err != nil {
		return nil, fmt.Errorf("serve the agent on %s: %w", cfg.AgentListen, err)
	}
	tc.NextProtos = []string{"h2", "http/1.1"}
	ln, err := net.Listen("tcp", cfg.AgentListen)
	if err != nil {
		return nil, fmt.Errorf("serve the agent on %s: %w", cfg.AgentListen, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, TLSConfig: tc}
	go func() {
		if err := srv.Serve(tls.NewListener(ln, tc)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			cfg.Logger.Error("agent TLS server", "err", err)
		}
	}()
	cfg.Logger.Info("agent RPC served with mutual TLS", "address", ln.Addr().String(), "certificates", cfg.AgentTLSDir)
	return srv, nil
}
