// Package metrics samples the sandbox's own resource use for GET /metrics: CPU
// from /proc/stat, memory from /proc/meminfo and disk from statfs of a path.
package metrics

import (
	"fmt"
	"math"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"

	"lelantos.dev/lelantos/internal/procfs"
)

// firstWindow is how long the first sample measures CPU use over, when there is
// no earlier sample to compare with.
const firstWindow = 100 * time.Millisecond

// Snapshot is the JSON body of GET /metrics. Sizes are bytes.
type Snapshot struct {
	Timestamp  int64   `json:"ts"`
	CPUCount   int     `json:"cpu_count"`
	CPUUsedPct float64 `json:"cpu_used_pct"`
	MemTotal   uint64  `json:"mem_total"`
	MemUsed    uint64  `json:"mem_used"`
	MemCache   uint64  `json:"mem_cache"`
	DiskUsed   uint64  `json:"disk_used"`
	DiskTotal  uint64  `json:"disk_total"`
}

// Collector samples metrics. CPU use is measured between consecutive samples.
type Collector struct {
	procRoot string
	diskPath string
	mu       sync.Mutex
	last     *procfs.CPUTimes
}

// NewCollector reads /proc under procRoot and disk use of the filesystem
// holding diskPath ("/proc" and "/" in a sandbox).
func NewCollector(procRoot, diskPath string) *Collector {
	return &Collector{procRoot: procRoot, diskPath: diskPath}
}

// Sample measures now.
func (c *Collector) Sample() (Snapshot, error) {
	s := Snapshot{Timestamp: time.Now().Unix(), CPUCount: runtime.NumCPU()}
	pct, err := c.cpuPercent()
	if err != nil {
		return Snapshot{}, err
	}
	s.CPUUsedPct = pct
	mem, err := procfs.ReadMeminfo(filepath.Join(c.procRoot, "meminfo"))
	if err != nil {
		return Snapshot{}, err
	}
	s.MemTotal = mem["MemTotal"]
	avail, ok := mem["MemAvailable"]
	if !ok {
		avail = mem["MemFree"] + mem["Buffers"] + mem["Cached"]
	}
	if avail < s.MemTotal {
		s.MemUsed = s.MemTotal - avail
	}
	s.MemCache = mem["Cached"]
	var fs syscall.Statfs_t
	if err := syscall.Statfs(c.diskPath, &fs); err != nil {
		return Snapshot{}, fmt.Errorf("statfs %s: %w", c.diskPath, err)
	}
	s.DiskTotal = fs.Blocks * uint64(fs.Bsize)
	s.DiskUsed = (fs.Blocks - fs.Bfree) * uint64(fs.Bsize)
	return s, nil
}

// cpuPercent returns the busy share of all CPUs since the last sample (or over
// firstWindow for the first one), in percent with two decimals.
func (c *Collector) cpuPercent() (float64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	path := filepath.Join(c.procRoot, "stat")
	prev := c.last
	if prev == nil {
		first, err := procfs.ReadCPU(path)
		if err != nil {
			return 0, err
		}
		prev = &first
		time.Sleep(firstWindow)
	}
	now, err := procfs.ReadCPU(path)
	if err != nil {
		return 0, err
	}
	c.last = &now
	if now.Total <= prev.Total || now.Busy < prev.Busy {
		return 0, nil
	}
	pct := float64(now.Busy-prev.Busy) / float64(now.Total-prev.Total) * 100
	return math.Round(pct*100) / 100, nil
}
