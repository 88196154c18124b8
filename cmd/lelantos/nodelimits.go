package main

import (
	"flag"
	"fmt"

	"lelantos.dev/lelantos/internal/engine"
	"lelantos.dev/lelantos/internal/network"
)

// nodeLimits are serve's options for what the node's sandboxes may take of it.
type nodeLimits struct {
	logCapMB                        int
	cpus, memoryMB, reserveMB       int
	cpuOvercommit, memoryOvercommit float64
	dnsRate                         float64
	dnsBurst                        int
}

// register adds the options' flags to fs.
func (l *nodeLimits) register(fs *flag.FlagSet) {
	fs.IntVar(&l.logCapMB, "log-cap-mb", engine.DefaultLogCap>>20, "disk space (MB) each sandbox's logs may take; the oldest lines go first, lifecycle events are kept apart")
	fs.IntVar(&l.cpus, "node-cpus", 0, "CPUs the node's sandboxes share before overcommit (default: the host's)")
	fs.IntVar(&l.memoryMB, "node-memory-mb", 0, "memory (MB) the node's sandboxes share before overcommit (default: the host's, less --memory-reserve-mb)")
	fs.IntVar(&l.reserveMB, "memory-reserve-mb", engine.DefaultMemoryReserveMB, "memory (MB) kept for the host when --node-memory-mb is not given")
	fs.Float64Var(&l.cpuOvercommit, "cpu-overcommit", engine.DefaultCPUOvercommit, "sandboxes may ask for this many times --node-cpus in all; creates beyond answer 503")
	fs.Float64Var(&l.memoryOvercommit, "memory-overcommit", engine.DefaultMemoryOvercommit, "sandboxes may ask for this many times --node-memory-mb in all; creates beyond answer 503")
	fs.Float64Var(&l.dnsRate, "dns-rate", network.DefaultDNSRate, "DNS queries per second each sandbox may send; more are refused")
	fs.IntVar(&l.dnsBurst, "dns-burst", network.DefaultDNSBurst, "DNS queries each sandbox may send at once above --dns-rate")
}

// check reports the first option that cannot work, naming its flag.
func (l nodeLimits) check() error {
	switch {
	case l.logCapMB < engine.MinLogCap>>20 || l.logCapMB > 1<<20:
		return fmt.Errorf("--log-cap-mb %d must be %d..%d", l.logCapMB, engine.MinLogCap>>20, 1<<20)
	case l.cpus < 0:
		return fmt.Errorf("--node-cpus %d must not be negative", l.cpus)
	case l.memoryMB < 0:
		return fmt.Errorf("--node-memory-mb %d must not be negative", l.memoryMB)
	case l.reserveMB < 0:
		return fmt.Errorf("--memory-reserve-mb %d must not be negative", l.reserveMB)
	case l.cpuOvercommit <= 0:
		return fmt.Errorf("--cpu-overcommit %g must be more than 0", l.cpuOvercommit)
	case l.memoryOvercommit <= 0:
		return fmt.Errorf("--memory-overcommit %g must be more than 0", l.memoryOvercommit)
	case l.dnsRate <= 0:
		return fmt.Errorf("--dns-rate %g must be more than 0", l.dnsRate)
	case l.dnsBurst <= 0:
		return fmt.Errorf("--dns-burst %d must be more than 0", l.dnsBurst)
	}
	return nil
}

// applyEngine sets the engine options the limits stand for.
func (l nodeLimits) applyEngine(o *engine.Options) {
	o.LogCap = int64(l.logCapMB) << 20
	o.NodeCPUs, o.NodeMemoryMB, o.MemoryReserveMB = l.cpus, l.memoryMB, l.reserveMB
	o.CPUOvercommit, o.MemoryOvercommit = l.cpuOvercommit, l.memoryOvercommit
}
