package engine

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"lelantos.dev/lelantos/internal/network"
	"lelantos.dev/lelantos/internal/runtime"
)

// The steps of starting a sandbox that the engine reports to its Observer and
// traces.
const (
	// StepNetwork sets up the sandbox's namespace, veth and firewall rules.
	StepNetwork = "network"
	// StepStart boots the runtime; StepRestore restores it from a checkpoint
	// (a template's snapshot, a fork's or snapshot's image).
	StepStart   = "start"
	StepRestore = "restore"
	// StepEnvdWait waits for the daemon in the sandbox to answer /health.
	StepEnvdWait = "envd_wait"
	// StepInit is the daemon's POST /init: token, environment, defaults.
	StepInit = "init"
)

// Observer is told how long each step of a sandbox's start took (one of the
// Step constants) and how it ended (err is nil on success). It is called
// from many goroutines at once, and must not block.
type Observer interface {
	Step(step string, d time.Duration, err error)
}

// tracerName is the instrumentation scope of the engine's spans.
const tracerName = "lelantos.dev/lelantos/internal/engine"

// steps times the steps of sandbox starts for the Observer and, within an
// operation that is traced (an agent RPC), as spans.
type steps struct {
	obs        Observer // nil: none
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator
}

func newSteps(obs Observer, tp trace.TracerProvider) *steps {
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	return &steps{obs: obs, tracer: tp.Tracer(tracerName), propagator: propagation.TraceContext{}}
}

// begin starts step name: a span when ctx carries a traced operation (a
// sandbox the pool boots in the background has none, and makes no lone
// spans), and the clock. end reports the step's result.
func (s *steps) begin(ctx context.Context, name string) (context.Context, func(error)) {
	start := time.Now()
	var span trace.Span
	if trace.SpanContextFromContext(ctx).IsValid() {
		ctx, span = s.tracer.Start(ctx, "engine."+name)
	}
	return ctx, func(err error) {
		if span != nil {
			endSpan(span, err)
		}
		if s.obs != nil {
			s.obs.Step(name, time.Since(start), err)
		}
	}
}

// run runs fn as step name.
func (s *steps) run(ctx context.Context, name string, fn func(context.Context) error) error {
	ctx, end := s.begin(ctx, name)
	err := fn(ctx)
	end(err)
	return err
}

// endSpan ends span with err's status.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// observe makes c report its waits and /init calls as steps.
func (c *envdClient) observe(s *steps) {
	c.steps = s
	c.http.Transport = &envdTransport{next: c.http.Transport, steps: s}
}

// waitHealthy waits for the daemon at addr (pollHealthy) as StepEnvdWait.
func (c *envdClient) waitHealthy(ctx context.Context, addr string) error {
	return c.steps.run(ctx, StepEnvdWait, func(ctx context.Context) error { return c.pollHealthy(ctx, addr) })
}

// setupNetwork sets up rec's network as StepNetwork.
func (e *Engine) setupNetwork(ctx context.Context, rec *record) (*network.Endpoint, error) {
	ctx, end := e.envd.steps.begin(ctx, StepNetwork)
	ep, err := e.opts.Network.Setup(ctx, rec.rid(), netOptions(rec.Spec))
	end(err)
	return ep, err
}

// runtimeStart boots sandbox rid as StepStart.
func (e *Engine) runtimeStart(ctx context.Context, rt runtime.Runtime, rid string, cfg runtime.Config) error {
	return e.envd.steps.run(ctx, StepStart, func(ctx context.Context) error { return rt.Start(ctx, rid, cfg) })
}

// runtimeRestore restores sandbox rid from image as StepRestore.
func (e *Engine) runtimeRestore(ctx context.Context, rt runtime.Runtime, rid string, cfg runtime.Config, image string) error {
	return e.envd.steps.run(ctx, StepRestore, func(ctx context.Context) error { return rt.Restore(ctx, rid, cfg, image) })
}

// envdTransport makes every POST /init to a daemon StepInit. In a traced
// operation the request carries its span in a traceparent header, and the
// time the daemon reports having spent (its Server-Timing header) becomes a
// server span of the daemon's: the daemon itself cannot reach a collector
// from inside its sandbox.
type envdTransport struct {
	next  http.RoundTripper
	steps *steps
}

// RoundTrip implements http.RoundTripper.
func (t *envdTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodPost || req.URL.Path != "/init" {
		return t.next.RoundTrip(req)
	}
	ctx, end := t.steps.begin(req.Context(), StepInit)
	span := trace.SpanFromContext(ctx)
	if span.SpanContext().IsValid() {
		req = req.Clone(ctx)
		t.steps.propagator.Inject(ctx, propagation.HeaderCarrier(req.Header))
	}
	resp, err := t.next.RoundTrip(req)
	switch {
	case err != nil:
		end(err)
		return nil, err
	case resp.StatusCode/100 != 2:
		end(&initStatusError{status: resp.Status})
	default:
		end(nil)
	}
	if span.SpanContext().IsValid() {
		if d, ok := serverTiming(resp.Header.Get("Server-Timing"), "init"); ok {
			now := time.Now()
			_, srv := t.steps.tracer.Start(ctx, "envd /init", trace.WithSpanKind(trace.SpanKindServer),
				trace.WithTimestamp(now.Add(-d)), trace.WithAttributes(attribute.Int("http.response.status_code", resp.StatusCode)))
			srv.End(trace.WithTimestamp(now))
		}
	}
	return resp, nil
}

// CloseIdleConnections closes the idle connections of the transport below.
func (t *envdTransport) CloseIdleConnections() {
	if c, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// initStatusError is an /init the daemon refused; the caller reports the
// details.
type initStatusError struct{ status string }

func (e *initStatusError) Error() string { return "daemon /init: " + e.status }

// serverTiming returns the duration of metric name in a Server-Timing
// header value, e.g. `init;dur=1.5` (milliseconds).
func serverTiming(header, name string) (time.Duration, bool) {
	for metric := range strings.SplitSeq(header, ",") {
		parts := strings.Split(strings.TrimSpace(metric), ";")
		if strings.TrimSpace(parts[0]) != name {
			continue
		}
		for _, p := range parts[1:] {
			k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
			if !ok || k != "dur" {
				continue
			}
			ms, err := strconv.ParseFloat(v, 64)
			if err != nil || ms < 0 || ms > 3.6e6 {
				return 0, false
			}
			return time.Duration(ms * float64(time.Millisecond)), true
		}
	}
	return 0, false
}
