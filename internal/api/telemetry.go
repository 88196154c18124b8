package api

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Observer is told of every API request once it is answered: its method
// (one of net/http's, else "other"),
// its route pattern (e.g. /sandboxes/{sandboxID}; RouteNone when no route
// matched), the status answered and how long it took. It is called from many
// goroutines at once, and must not block.
type Observer interface {
	Request(method, route string, status int, d time.Duration)
}

// RouteNone is the route of requests that matched none.
const RouteNone = "none"

// tracerName is the instrumentation scope of the API's spans.
const tracerName = "lelantos.dev/lelantos/internal/api"

// observe is the middleware that reports every request to obs and, with
// tp, traces it as a server span named after its route. A traceparent sent
// by the client is linked, not continued: API clients are not trusted to
// pick the traces (and the sampling) of the server's work.
func observe(obs Observer, tp trace.TracerProvider) func(http.Handler) http.Handler {
	var tracer trace.Tracer
	if tp != nil {
		tracer = tp.Tracer(tracerName)
	}
	return func(next http.Handler) http.Handler {
		if obs == nil && tracer == nil {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			method := methodLabel(r.Method)
			var span trace.Span
			if tracer != nil {
				opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer), trace.WithNewRoot(),
					trace.WithAttributes(attribute.String("http.request.method", method))}
				remote := propagation.TraceContext{}.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
				if sc := trace.SpanContextFromContext(remote); sc.IsValid() {
					opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
				}
				ctx, s := tracer.Start(r.Context(), method, opts...)
				span, r = s, r.WithContext(ctx)
			}
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			defer func() {
				status := ww.Status()
				if status == 0 {
					status = http.StatusOK
				}
				route := RouteNone
				if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
					route = rc.RoutePattern()
				}
				if span != nil {
					span.SetName(method + " " + route)
					span.SetAttributes(attribute.String("http.route", route), attribute.Int("http.response.status_code", status))
					if status >= 500 {
						span.SetStatus(codes.Error, http.StatusText(status))
					}
					span.End()
				}
				if obs != nil {
					obs.Request(method, route, status, time.Since(start))
				}
			}()
			next.ServeHTTP(ww, r)
		})
	}
}

// methodLabel is method, or "other" for a method no route serves: clients
// choose it, and labels must stay few.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return method
	}
	return "other"
}

// requestBuckets are the histogram buckets of API requests, in seconds: from
// a lookup's milliseconds to a create's seconds and a build upload's minutes.
var requestBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}

// Metrics is an Observer that keeps Prometheus metrics:
// lelantos_api_request_duration_seconds{method, route, code}.
type Metrics struct {
	requests *prometheus.HistogramVec
}

var _ Observer = (*Metrics)(nil)

// NewMetrics registers the API's metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "lelantos_api_request_duration_seconds",
		Help:    "Time taken to answer API requests, by method, route pattern and status code.",
		Buckets: requestBuckets,
	}, []string{"method", "route", "code"})}
	if err := reg.Register(m.requests); err != nil {
		return nil, fmt.Errorf("api metrics: %w", err)
	}
	return m, nil
}

// Request implements Observer.
func (m *Metrics) Request(method, route string, status int, d time.Duration) {
	m.requests.WithLabelValues(method, route, strconv.Itoa(status)).Observe(d.Seconds())
}
