package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"lelantos.dev/lelantos/internal/agent"
	"lelantos.dev/lelantos/internal/api"
	"lelantos.dev/lelantos/internal/controlplane"
	"lelantos.dev/lelantos/internal/engine"
	"lelantos.dev/lelantos/internal/proxy"
	"lelantos.dev/lelantos/internal/telemetry"
	"lelantos.dev/lelantos/internal/template"
)

// defaultMetricsListen is where a server serves /metrics unless told
// otherwise: loopback only, since the metrics are not authenticated.
const defaultMetricsListen = "127.0.0.1:9090"

// telemetryFlags are the options of what a server reports to operators.
type telemetryFlags struct {
	// metricsListen is the address of /metrics ("" turns it off);
	// metricsChosen whether the flag was given (a busy default only warns).
	metricsListen string
	metricsChosen bool
	// otlpEndpoint is the OTLP/HTTP collector traces go to ("" leaves it to
	// the OTEL_* environment).
	otlpEndpoint string
}

// register adds the flags to fs.
func (t *telemetryFlags) register(fs *flag.FlagSet) {
	t.metricsListen = defaultMetricsListen
	fs.Func("metrics-listen", `address of the Prometheus /metrics listener (unauthenticated: keep it on loopback or a private network); "" turns it off (default `+defaultMetricsListen+`; when that is busy the server starts without it)`, func(v string) error {
		if v != "" {
			if _, _, err := net.SplitHostPort(v); err != nil {
				return fmt.Errorf("want host:port, e.g. %s, or \"\": %w", defaultMetricsListen, err)
			}
		}
		t.metricsListen, t.metricsChosen = v, true
		return nil
	})
	fs.StringVar(&t.otlpEndpoint, "otlp-endpoint", "", "OTLP/HTTP collector to send traces to, e.g. http://127.0.0.1:4318 (traces go to its /v1/traces); without it the standard OTEL_EXPORTER_OTLP_ENDPOINT (or _TRACES_ENDPOINT) variable decides, and with neither tracing is off")
}

// serverTelemetry is a server's registries, tracing and metrics listener.
type serverTelemetry struct {
	tracing *telemetry.Tracing
	// process, controlPlane and node are the registries served: the
	// process's own figures, the control plane's (API, lifecycle, proxy)
	// and the node's (engine, agent RPCs, builds).
	process, controlPlane, node *prometheus.Registry
	ln                          net.Listener // nil: no /metrics
	log                         *slog.Logger
}

// startTelemetry sets up tracing, the registries and the metrics listener.
func startTelemetry(ctx context.Context, f telemetryFlags, log *slog.Logger) (*serverTelemetry, error) {
	tr, err := telemetry.NewTracing(ctx, telemetry.TracingConfig{Endpoint: f.otlpEndpoint})
	if err != nil {
		return nil, err
	}
	proc, err := telemetry.NewProcessRegistry()
	if err != nil {
		return nil, err
	}
	t := &serverTelemetry{tracing: tr, process: proc, controlPlane: prometheus.NewRegistry(), node: prometheus.NewRegistry(), log: log}
	if f.metricsListen != "" {
		ln, err := net.Listen("tcp", f.metricsListen)
		switch {
		case err == nil:
			t.ln = ln
			log.Info("metrics", "url", "http://"+ln.Addr().String()+telemetry.MetricsPath)
		case f.metricsChosen:
			return nil, errors.Join(fmt.Errorf("--metrics-listen: %w", err), tr.Shutdown(ctx))
		default:
			// Another server on this machine holds the default, say: this
			// one serves no /metrics unless told where.
			log.Info("metrics: default address unavailable, serving no /metrics (choose one with --metrics-listen)", "addr", f.metricsListen, "err", err)
		}
	}
	if tr.Enabled() {
		log.Info("tracing", "otlp", tr.Endpoint())
	}
	return t, nil
}

// serve serves /metrics until ctx ends (without a listener it only waits
// for that), then returns nil; a failure of the listener is returned.
func (t *serverTelemetry) serve(ctx context.Context) error {
	if t.ln == nil {
		<-ctx.Done()
		return nil
	}
	return telemetry.ServeMetrics(ctx, t.ln, t.log, t.process, t.controlPlane, t.node)
}

// close sends the last spans and frees the listener if it was never served.
func (t *serverTelemetry) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := t.tracing.Shutdown(ctx); err != nil {
		t.log.Warn("tracing", "err", err)
	}
	if t.ln != nil {
		_ = t.ln.Close()
	}
}

// tracerProvider is the provider components trace with; nil when tracing
// is off, so that they skip it altogether.
func (t *serverTelemetry) tracerProvider() trace.TracerProvider {
	if t == nil || !t.tracing.Enabled() {
		return nil
	}
	return t.tracing.TracerProvider()
}

// controlPlaneObservers are what the control plane's parts report to.
type controlPlaneObservers struct {
	api   api.Observer
	ops   controlplane.Observer
	proxy proxy.Observer
}

// controlPlaneObservers registers the control plane's metrics, the
// sandboxes of st among them.
func (t *serverTelemetry) controlPlaneObservers(st controlplane.SandboxLister) (controlPlaneObservers, error) {
	a, err := api.NewMetrics(t.controlPlane)
	if err != nil {
		return controlPlaneObservers{}, err
	}
	c, err := controlplane.NewMetrics(t.controlPlane)
	if err != nil {
		return controlPlaneObservers{}, err
	}
	p, err := proxy.NewMetrics(t.controlPlane)
	if err != nil {
		return controlPlaneObservers{}, err
	}
	if err := t.controlPlane.Register(controlplane.NewSandboxCollector(st)); err != nil {
		return controlPlaneObservers{}, fmt.Errorf("control plane metrics: %w", err)
	}
	return controlPlaneObservers{api: a, ops: c, proxy: p}, nil
}

// nodeObservers are what a node's parts report to.
type nodeObservers struct {
	reg    prometheus.Registerer // nil: no metrics
	engine engine.Observer
	builds template.Observer
	tracer trace.TracerProvider
	// server are the agent server's options (RPC metrics and tracing),
	// client the agent client's (tracing).
	server []connect.HandlerOption
	client []connect.ClientOption
}

// newNodeObservers registers a node's metrics with reg (nil: none) and
// traces its RPCs and steps with tr (nil: none).
func newNodeObservers(reg prometheus.Registerer, tr *telemetry.Tracing) (*nodeObservers, error) {
	o := &nodeObservers{reg: reg}
	if reg != nil {
		em, err := engine.NewMetrics(reg)
		if err != nil {
			return nil, err
		}
		tm, err := template.NewMetrics(reg)
		if err != nil {
			return nil, err
		}
		am, err := agent.NewMetrics(reg)
		if err != nil {
			return nil, err
		}
		o.engine, o.builds = em, tm
		o.server = append(o.server, connect.WithInterceptors(am))
	}
	if tr != nil && tr.Enabled() {
		opt, err := tr.ConnectOption()
		if err != nil {
			return nil, err
		}
		o.tracer = tr.TracerProvider()
		o.server = append(o.server, opt)
		o.client = append(o.client, opt)
	}
	return o, nil
}

// collect registers the gauges of e.
func (o *nodeObservers) collect(e *engine.Engine) error {
	if o.reg == nil {
		return nil
	}
	if err := o.reg.Register(engine.NewCollector(e)); err != nil {
		return fmt.Errorf("node metrics: %w", err)
	}
	return nil
}
