package telemetry

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"connectrpc.com/connect"
	"connectrpc.com/otelconnect"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// The standard OpenTelemetry environment variables Tracing reads.
const (
	EnvEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"
	EnvTracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	EnvProtocol       = "OTEL_EXPORTER_OTLP_PROTOCOL"
	EnvTracesProtocol = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	EnvSDKDisabled    = "OTEL_SDK_DISABLED"
	EnvTracesExporter = "OTEL_TRACES_EXPORTER"
)

// DefaultServiceName names the process in traces unless OTEL_SERVICE_NAME
// or TracingConfig.ServiceName says otherwise.
const DefaultServiceName = "lelantos"

// ErrTracingConfig: the tracing settings cannot work; the message names the
// flag or variable.
var ErrTracingConfig = errors.New("invalid tracing configuration")

// TracingConfig says where traces go. The zero value reads the standard
// environment variables only: with none of them set, tracing is off.
type TracingConfig struct {
	// Endpoint is an OTLP/HTTP collector URL (http or https), e.g.
	// http://127.0.0.1:4318; without a path, traces go to its /v1/traces,
	// as with OTEL_EXPORTER_OTLP_ENDPOINT. It beats the environment. ""
	// leaves it to OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or
	// OTEL_EXPORTER_OTLP_ENDPOINT (and the exporter's other OTEL_*
	// variables: headers, timeout, certificates); with neither, and no
	// Exporter, tracing is off. OTEL_SDK_DISABLED=true or
	// OTEL_TRACES_EXPORTER=none turn off what the environment turned on.
	Endpoint string
	// ServiceName is the service.name of the process's spans; default
	// DefaultServiceName (OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
	// override it).
	ServiceName string
	// Exporter, when set, receives every span synchronously instead of an
	// OTLP exporter, and every span is sampled (tests pass tracetest's
	// in-memory exporter).
	Exporter sdktrace.SpanExporter
	// Getenv reads the variables that decide whether tracing is on and
	// where to; os.Getenv when nil (the exporter reads its other OTEL_*
	// variables from the process's environment itself).
	Getenv func(string) string
}

// Tracing is a process's tracer provider and the W3C trace-context
// propagator its components pass spans across processes with. When it is
// off its provider is a no-op: spans cost a call and record nothing.
type Tracing struct {
	provider   trace.TracerProvider
	propagator propagation.TextMapPropagator
	sdk        *sdktrace.TracerProvider // nil when off
	endpoint   string
}

// NewTracing sets up tracing as cfg says. Call Shutdown when the process
// ends, so that the last spans are sent.
func NewTracing(ctx context.Context, cfg TracingConfig) (*Tracing, error) {
	getenv := cfg.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	t := &Tracing{provider: noop.NewTracerProvider(), propagator: propagation.TraceContext{}}
	var opts []sdktrace.TracerProviderOption
	switch {
	case cfg.Exporter != nil:
		opts = append(opts, sdktrace.WithSyncer(cfg.Exporter), sdktrace.WithSampler(sdktrace.AlwaysSample()))
		t.endpoint = "test exporter"
	default:
		exp, endpoint, err := otlpExporter(ctx, cfg.Endpoint, getenv)
		if err != nil || exp == nil {
			return t, err
		}
		// The sampler is the SDK's default or OTEL_TRACES_SAMPLER's.
		opts = append(opts, sdktrace.WithBatcher(exp))
		t.endpoint = endpoint
	}
	name := cfg.ServiceName
	if name == "" {
		name = DefaultServiceName
	}
	res, err := resource.New(ctx, resource.WithAttributes(attribute.String("service.name", name)), resource.WithFromEnv())
	if err != nil {
		return nil, fmt.Errorf("tracing resource: %w", err)
	}
	t.sdk = sdktrace.NewTracerProvider(append(opts, sdktrace.WithResource(res))...)
	t.provider = t.sdk
	return t, nil
}

// otlpExporter is the OTLP/HTTP exporter flag or environment asks for, and
// where it sends; nil when neither asks for one.
func otlpExporter(ctx context.Context, flag string, getenv func(string) string) (sdktrace.SpanExporter, string, error) {
	var opts []otlptracehttp.Option
	endpoint := flag
	if flag != "" {
		u, err := endpointURL(flag)
		if err != nil {
			return nil, "", err
		}
		opts = append(opts, otlptracehttp.WithEndpointURL(u))
		endpoint = u
	} else {
		if strings.EqualFold(getenv(EnvSDKDisabled), "true") || strings.EqualFold(getenv(EnvTracesExporter), "none") {
			return nil, "", nil
		}
		endpoint = cmp.Or(getenv(EnvTracesEndpoint), getenv(EnvEndpoint))
		if endpoint == "" {
			return nil, "", nil
		}
	}
	for _, v := range []string{EnvTracesProtocol, EnvProtocol} {
		if p := getenv(v); p != "" {
			if p != "http/protobuf" {
				return nil, "", fmt.Errorf("%w: %s=%q: only http/protobuf is supported", ErrTracingConfig, v, p)
			}
			break
		}
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, "", fmt.Errorf("otlp exporter: %w", err)
	}
	return exp, endpoint, nil
}

// endpointURL checks an --otlp-endpoint value and returns the URL traces are
// posted to: the value's own path, or /v1/traces when it has none.
func endpointURL(v string) (string, error) {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%w: --otlp-endpoint %q: want an http:// or https:// URL of an OTLP collector, e.g. http://127.0.0.1:4318", ErrTracingConfig, v)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/traces"
	}
	return u.String(), nil
}

// Enabled reports whether spans are recorded and exported.
func (t *Tracing) Enabled() bool { return t.sdk != nil }

// Endpoint is where spans go ("" when off), for the start-up message.
func (t *Tracing) Endpoint() string { return t.endpoint }

// TracerProvider is what components start spans with; a no-op when off.
func (t *Tracing) TracerProvider() trace.TracerProvider { return t.provider }

// Propagator carries span contexts across processes as W3C traceparent
// headers.
func (t *Tracing) Propagator() propagation.TextMapPropagator { return t.propagator }

// ConnectOption traces connect-go RPCs: a client span per call whose
// context travels in the traceparent header, and a server span per call
// that continues it (the agent RPC's peers trust each other). When tracing
// is off it is an empty option, so RPCs pay nothing.
func (t *Tracing) ConnectOption() (connect.Option, error) {
	if !t.Enabled() {
		return connect.WithOptions(), nil
	}
	i, err := otelconnect.NewInterceptor(otelconnect.WithTracerProvider(t.provider), otelconnect.WithPropagator(t.propagator),
		otelconnect.WithoutMetrics(), otelconnect.WithTrustRemote())
	if err != nil {
		return nil, fmt.Errorf("rpc tracing: %w", err)
	}
	return connect.WithInterceptors(i), nil
}

// Shutdown sends the spans not yet sent and stops the exporter.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t.sdk == nil {
		return nil
	}
	if err := t.sdk.Shutdown(ctx); err != nil {
		return fmt.Errorf("shut down tracing: %w", err)
	}
	return nil
}
