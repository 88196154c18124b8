package agent

import (
	"context"
	"errors"
	"fmt"
	"path"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
)

// rpcBuckets are the histogram buckets of agent RPCs, in seconds: from a
// listing's milliseconds to a checkpoint of a large sandbox's minutes.
var rpcBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}

// Metrics is a server interceptor that times every agent RPC the node
// serves: lelantos_node_rpc_duration_seconds{procedure, code}, where
// procedure is the method (CreateSandbox, PauseSandbox, ...) and code the
// connect code of its answer ("ok" on success). Pass it to Server.Handler
// with connect.WithInterceptors.
type Metrics struct {
	rpcs *prometheus.HistogramVec
}

var _ connect.Interceptor = (*Metrics)(nil)

// NewMetrics registers the agent's RPC metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{rpcs: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "lelantos_node_rpc_duration_seconds",
		Help:    "Time this node took to answer agent RPCs (the lifecycle operations the control plane asks for), by procedure and connect code.",
		Buckets: rpcBuckets,
	}, []string{"procedure", "code"})}
	if err := reg.Register(m.rpcs); err != nil {
		return nil, fmt.Errorf("agent metrics: %w", err)
	}
	return m, nil
}

// observe records one call of procedure that ended with err.
func (m *Metrics) observe(procedure string, start time.Time, err error) {
	code := "ok"
	if err != nil {
		code = connect.CodeOf(err).String()
		var ce *connect.Error
		if !errors.As(err, &ce) && errors.Is(err, context.Canceled) {
			code = connect.CodeCanceled.String()
		}
	}
	m.rpcs.WithLabelValues(path.Base(procedure), code).Observe(time.Since(start).Seconds())
}

// WrapUnary implements connect.Interceptor.
func (m *Metrics) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			return next(ctx, req)
		}
		start := time.Now()
		resp, err := next(ctx, req)
		m.observe(req.Spec().Procedure, start, err)
		return resp, err
	}
}

// WrapStreamingClient implements connect.Interceptor; client streams are not
// timed.
func (m *Metrics) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler implements connect.Interceptor.
func (m *Metrics) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		start := time.Now()
		err := next(ctx, conn)
		m.observe(conn.Spec().Procedure, start, err)
		return err
	}
}
