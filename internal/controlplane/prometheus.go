package controlplane

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"lelantos.dev/lelantos/internal/store"
)

// operationBuckets are the histogram buckets of lifecycle operations, in
// seconds: from a kill's milliseconds to a large checkpoint's minutes.
var operationBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}

// Metrics is an Observer that keeps Prometheus metrics:
// lelantos_controlplane_operation_duration_seconds{operation, result} and
// lelantos_quota_refusals_total{quota}.
type Metrics struct {
	ops    *prometheus.HistogramVec
	quotas *prometheus.CounterVec
}

var _ Observer = (*Metrics)(nil)

// NewMetrics registers the control plane's metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		ops: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "lelantos_controlplane_operation_duration_seconds",
			Help:    "Time taken by sandbox lifecycle operations (create, kill, pause, resume, connect, fork, snapshot, resume_for_traffic), by result (ok or the error's kind).",
			Buckets: operationBuckets,
		}, []string{"operation", "result"}),
		quotas: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lelantos_quota_refusals_total",
			Help: "Admissions of sandboxes and builds refused because the team was at a quota, by quota (max-sandboxes, max-vcpu, max-memory-mb, max-builds).",
		}, []string{"quota"}),
	}
	for _, c := range []prometheus.Collector{m.ops, m.quotas} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("control plane metrics: %w", err)
		}
	}
	// Known quotas start at zero, so that rates work from the first refusal.
	for _, q := range []string{store.QuotaSandboxes, store.QuotaVCPU, store.QuotaMemoryMB, store.QuotaBuilds} {
		m.quotas.WithLabelValues(q)
	}
	return m, nil
}

// Operation implements Observer.
func (m *Metrics) Operation(op string, d time.Duration, err error) {
	m.ops.WithLabelValues(op, Result(err)).Observe(d.Seconds())
}

// QuotaRefused implements Observer.
func (m *Metrics) QuotaRefused(quota string) { m.quotas.WithLabelValues(quota).Inc() }

// SandboxLister is what the sandbox gauge reads; Store has it.
type SandboxLister interface {
	ListSandboxes(ctx context.Context, f store.SandboxFilter) ([]*store.Sandbox, string, error)
}

// sandboxStates are the states lelantos_sandboxes always reports.
var sandboxStates = []string{StateStarting, StateRunning, StatePausing, StatePaused, StateResuming, StateKilled, StateDead}

// censusPage is how many sandboxes one store read of a scrape takes.
const censusPage = 500

// sandboxCollector counts the stored sandboxes by state at each scrape.
type sandboxCollector struct {
	st      SandboxLister
	timeout time.Duration
	desc    *prometheus.Desc
}

// NewSandboxCollector returns the collector of lelantos_sandboxes{state}:
// the sandboxes of every team and node as the store records them, read at
// each scrape (dead ones stay for Config.DeadRetention).
func NewSandboxCollector(st SandboxLister) prometheus.Collector {
	return &sandboxCollector{st: st, timeout: 10 * time.Second, desc: prometheus.NewDesc("lelantos_sandboxes",
		"Sandboxes by state as the control plane records them (starting, running, pausing, paused, resuming, killed, dead).",
		[]string{"state"}, nil)}
}

// Describe implements prometheus.Collector.
func (c *sandboxCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *sandboxCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	counts, err := c.count(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	for state, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), state)
	}
}

// count reads every sandbox record, a page at a time.
func (c *sandboxCollector) count(ctx context.Context) (map[string]int, error) {
	counts := make(map[string]int, len(sandboxStates))
	for _, s := range sandboxStates {
		counts[s] = 0
	}
	f := store.SandboxFilter{Limit: censusPage}
	for {
		page, next, err := c.st.ListSandboxes(ctx, f)
		if err != nil {
			return nil, fmt.Errorf("count sandboxes: %w", err)
		}
		for _, sb := range page {
			counts[sb.State]++
		}
		if next == "" || len(page) == 0 {
			return counts, nil
		}
		f.Cursor = next
	}
}

// NodeLister is what the node gauges read; *Service has it.
type NodeLister interface {
	Nodes(ctx context.Context) ([]NodeView, error)
}

// nodeCollector reports the nodes by state and each node's silence at each
// scrape.
type nodeCollector struct {
	nl           NodeLister
	timeout      time.Duration
	states, ages *prometheus.Desc
}

// NewNodeCollector returns the collector of lelantos_nodes{state} (ready,
// draining, unhealthy; every state always reported) and
// lelantos_node_heartbeat_age_seconds{node}, read from nl at each scrape.
func NewNodeCollector(nl NodeLister) prometheus.Collector {
	return &nodeCollector{nl: nl, timeout: 10 * time.Second,
		states: prometheus.NewDesc("lelantos_nodes",
			"Nodes by state: ready, draining (set by the operator), unhealthy (silent for longer than three heartbeats).",
			[]string{"state"}, nil),
		ages: prometheus.NewDesc("lelantos_node_heartbeat_age_seconds",
			"Time since each node's last heartbeat, by the store's clock.", []string{"node"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.states; ch <- c.ages }

// Collect implements prometheus.Collector.
func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	nodes, err := c.nl.Nodes(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.states, err)
		return
	}
	counts := map[string]int{NodeReady: 0, NodeDraining: 0, NodeUnhealthy: 0}
	for _, n := range nodes {
		counts[n.State]++
		ch <- prometheus.MustNewConstMetric(c.ages, prometheus.GaugeValue, n.Silence.Seconds(), n.ID)
	}
	for state, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.states, prometheus.GaugeValue, float64(n), state)
	}
}
