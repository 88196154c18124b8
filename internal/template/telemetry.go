package template

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Observer is told of every build that ran (from its start, waiting for a
// turn included, to its end): how long it took and how it ended (err is nil
// when the version is ready; BuildResult names its kind). It is called from
// many goroutines at once, and must not block.
type Observer interface {
	Build(d time.Duration, err error)
}

// BuildResult names how a build ended, for metrics: ready, step_failed (a
// RUN exited non-zero, say), invalid (the request or the Dockerfile),
// registry (an image pull), canceled, or error.
func BuildResult(err error) string {
	switch {
	case err == nil:
		return "ready"
	case errors.Is(err, ErrStepFailed):
		return "step_failed"
	case errors.Is(err, ErrInvalid):
		return "invalid"
	case errors.Is(err, ErrRegistry):
		return "registry"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "error"
}

// runBuild runs a build whose record exists (see runTurn) and reports it to
// the Observer.
func (b *Builder) runBuild(ctx context.Context, rec *buildRecord, req BuildRequest, t *ticket, w io.Writer) (*Result, error) {
	start := time.Now()
	res, err := b.runTurn(ctx, rec, req, t, w)
	if b.opts.Observer != nil {
		b.opts.Observer.Build(time.Since(start), err)
	}
	return res, err
}

// buildBuckets are the histogram buckets of builds, in seconds: from a
// cached rebuild's second to an hour.
var buildBuckets = []float64{1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600}

// Metrics is an Observer that keeps Prometheus metrics:
// lelantos_template_build_duration_seconds{result}.
type Metrics struct {
	builds *prometheus.HistogramVec
}

var _ Observer = (*Metrics)(nil)

// NewMetrics registers the builder's metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{builds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "lelantos_template_build_duration_seconds",
		Help:    "Time taken by template builds on this node, waiting for a turn included, by result (ready, step_failed, invalid, registry, canceled, error).",
		Buckets: buildBuckets,
	}, []string{"result"})}
	if err := reg.Register(m.builds); err != nil {
		return nil, fmt.Errorf("template metrics: %w", err)
	}
	return m, nil
}

// Build implements Observer.
func (m *Metrics) Build(d time.Duration, err error) {
	m.builds.WithLabelValues(BuildResult(err)).Observe(d.Seconds())
}
