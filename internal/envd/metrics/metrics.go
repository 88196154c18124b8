// Package metrics samples the sandbox's own resource use for GET /metrics: CPU
// from /proc/stat, memory from /proc/meminfo and disk from statfs of a path.
package metrics

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
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

// cpuTimes is one reading of the aggregate cpu line of /proc/stat.
type cpuTimes struct{ busy, total uint64 }

// Collector samples metrics. CPU use is measured between consecutive samples.
type Collector struct {
	procRoot string
	diskPath string
	mu       sync.Mutex
	last     *cpuTimes
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
	mem, err := readMeminfo(filepath.Join(c.procRoot, "meminfo"))
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
		first, err := readCPU(path)
		if err != nil {
			return 0, err
		}
		prev = &first
		time.Sleep(firstWindow)
	}
	now, err := readCPU(path)
	if err != nil {
		return 0, err
	}
	c.last = &now
	if now.total <= prev.total || now.busy < prev.busy {
		return 0, nil
	}
	pct := float64(now.busy-prev.busy) / float64(now.total-prev.total) * 100
	return math.Round(pct*100) / 100, nil
}

// readCPU parses the aggregate "cpu" line of /proc/stat.
func readCPU(path string) (cpuTimes, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return cpuTimes{}, fmt.Errorf("read cpu times: %w", err)
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	fields := strings.Fields(string(line))
	if len(fields) < 5 || fields[0] != "cpu" {
		return cpuTimes{}, fmt.Errorf("read cpu times: unexpected %s format", path)
	}
	var t cpuTimes
	for i, f := range fields[1:] {
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return cpuTimes{}, fmt.Errorf("read cpu times: %w", err)
		}
		if i >= 8 {
			break // guest time is already counted in user time
		}
		t.total += v
		if i != 3 && i != 4 { // idle and iowait
			t.busy += v
		}
	}
	return t, nil
}

// readMeminfo parses /proc/meminfo into bytes per key.
func readMeminfo(path string) (map[string]uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read memory info: %w", err)
	}
	defer f.Close()
	out := map[string]uint64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseUint(fields[0], 10, 64)
		if err != nil {
			continue
		}
		if len(fields) > 1 && fields[1] == "kB" {
			v *= 1024
		}
		out[key] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read memory info: %w", err)
	}
	return out, nil
}
