// Package telemetry is what a Lelantos process reports to its operators:
// Prometheus metrics, gathered from one registry per component (control
// plane, node, the process itself) and served on a listener of their own,
// and OpenTelemetry traces, exported over OTLP when an endpoint is configured
// and a no-op otherwise.
//
// The components never use a global registry or tracer: each declares the
// small interface it reports through and takes a prometheus.Registerer and a
// trace.TracerProvider from whoever builds it, so that one process can hold a
// control plane and a node, and a process of its own can serve either.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MetricsPath is where ServeMetrics answers.
const MetricsPath = "/metrics"

// NewProcessRegistry returns a registry holding the process's own figures:
// the Go runtime's (goroutines, heap, GC) and the process's (CPU, memory,
// open files). Serve one per process, beside the components' registries.
func NewProcessRegistry() (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("process metrics: %w", err)
		}
	}
	return reg, nil
}

// Handler serves the metrics of every gatherer in Prometheus' exposition
// formats. A gatherer that fails is logged (when log is set) and the others
// are still served.
func Handler(log *slog.Logger, gs ...prometheus.Gatherer) http.Handler {
	opts := promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, Timeout: 30 * time.Second}
	if log != nil {
		opts.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	}
	return promhttp.HandlerFor(prometheus.Gatherers(gs), opts)
}

// ServeMetrics serves Handler(log, gs...) at MetricsPath on ln (every other
// path is a 404) until ctx ends, then closes ln and returns nil. A failure of
// the listener is returned.
func ServeMetrics(ctx context.Context, ln net.Listener, log *slog.Logger, gs ...prometheus.Gatherer) error {
	mux := http.NewServeMux()
	mux.Handle("GET "+MetricsPath, Handler(log, gs...))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: time.Minute}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve metrics: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve metrics: %w", err)
	}
	return nil
}
