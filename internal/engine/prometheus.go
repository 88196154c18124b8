package engine

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

// stepBuckets are the histogram buckets of start steps, in seconds: from a
// network setup's milliseconds to a cold boot's seconds.
var stepBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// Metrics is an Observer that keeps Prometheus metrics:
// lelantos_node_step_duration_seconds{step, result}.
type Metrics struct {
	steps *prometheus.HistogramVec
}

var _ Observer = (*Metrics)(nil)

// NewMetrics registers the engine's step metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{steps: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "lelantos_node_step_duration_seconds",
		Help:    "Time taken by each step of starting a sandbox on this node (network, start, restore, envd_wait, init), by result (ok, error).",
		Buckets: stepBuckets,
	}, []string{"step", "result"})}
	if err := reg.Register(m.steps); err != nil {
		return nil, fmt.Errorf("engine metrics: %w", err)
	}
	return m, nil
}

// Step implements Observer.
func (m *Metrics) Step(step string, d time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.steps.WithLabelValues(step, result).Observe(d.Seconds())
}

// collector reports an engine's sandboxes and capacity at each scrape.
type collector struct {
	e                                    *Engine
	sandboxes, warm                      *prometheus.Desc
	cpuLimit, cpuUsed, memLimit, memUsed *prometheus.Desc
	diskTotal, diskFree                  *prometheus.Desc
}

// NewCollector returns the collector of e's gauges: its sandboxes by state
// (lelantos_node_sandboxes{state}), its warm pool (lelantos_node_warm_sandboxes),
// what sandboxes may commit and do commit of its CPUs and memory
// (lelantos_node_{capacity,committed}_{vcpus,memory_bytes}), and the size and
// free space of the file system of its data directory
// (lelantos_node_disk_{total,free}_bytes). Register it once e exists.
func NewCollector(e *Engine) prometheus.Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &collector{e: e,
		sandboxes: d("lelantos_node_sandboxes", "Sandboxes on this node by state (starting, running, pausing, paused, resuming, dead); warm-pool sandboxes are not counted.", "state"),
		warm:      d("lelantos_node_warm_sandboxes", "Pre-booted sandboxes in this node's warm pools."),
		cpuLimit:  d("lelantos_node_capacity_vcpus", "vCPUs sandboxes may commit on this node in all (its CPUs times the CPU overcommit)."),
		cpuUsed:   d("lelantos_node_committed_vcpus", "vCPUs the sandboxes holding resources on this node ask for in all (running, starting, frozen and pooled ones)."),
		memLimit:  d("lelantos_node_capacity_memory_bytes", "Memory sandboxes may commit on this node in all."),
		memUsed:   d("lelantos_node_committed_memory_bytes", "Memory the sandboxes holding resources on this node ask for in all."),
		diskTotal: d("lelantos_node_disk_total_bytes", "Size of the file system holding this node's data directory (sandboxes' layers, checkpoints, logs)."),
		diskFree:  d("lelantos_node_disk_free_bytes", "Space left to unprivileged writers on the file system holding this node's data directory."),
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.sandboxes, c.warm, c.cpuLimit, c.cpuUsed, c.memLimit, c.memUsed, c.diskTotal, c.diskFree} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for state, n := range c.e.stateCounts() {
		ch <- prometheus.MustNewConstMetric(c.sandboxes, prometheus.GaugeValue, float64(n), string(state))
	}
	ch <- prometheus.MustNewConstMetric(c.warm, prometheus.GaugeValue, float64(c.e.Warm()))
	capa := c.e.Capacity()
	ch <- prometheus.MustNewConstMetric(c.cpuLimit, prometheus.GaugeValue, float64(capa.Limit.CPUs))
	ch <- prometheus.MustNewConstMetric(c.cpuUsed, prometheus.GaugeValue, float64(capa.Committed.CPUs))
	ch <- prometheus.MustNewConstMetric(c.memLimit, prometheus.GaugeValue, float64(capa.Limit.MemoryMB)*(1<<20))
	ch <- prometheus.MustNewConstMetric(c.memUsed, prometheus.GaugeValue, float64(capa.Committed.MemoryMB)*(1<<20))
	var fs unix.Statfs_t
	if err := unix.Statfs(c.e.opts.DataDir, &fs); err == nil {
		ch <- prometheus.MustNewConstMetric(c.diskTotal, prometheus.GaugeValue, float64(fs.Blocks)*float64(fs.Bsize))
		ch <- prometheus.MustNewConstMetric(c.diskFree, prometheus.GaugeValue, float64(fs.Bavail)*float64(fs.Bsize))
	}
}
