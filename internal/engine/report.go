package engine

import (
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"lelantos.dev/lelantos/internal/procfs"
)

// Report is the node as its agent reports it to the control plane: the
// machine, what sandboxes may commit of it and do, and how many it holds.
type Report struct {
	// CPUs is the number of the host's CPUs; CPUPercent their use since the
	// previous Report, in percent of all of them (0 on the first Report).
	CPUs       int
	CPUPercent float64
	// MemoryTotal is the host's memory in bytes, MemoryUsed what of it is not
	// available (MemTotal less MemAvailable).
	MemoryTotal, MemoryUsed int64
	// Capacity is the admission state (see Capacity).
	Capacity Capacity
	// DataDir is the node's data directory; DiskTotal and DiskUsed are the
	// size and the used part of its file system, in bytes.
	DataDir             string
	DiskTotal, DiskUsed int64
	// Mount is the mount that holds DataDir.
	Mount Mount
	// Sandboxes counts the sandboxes by state, every state present, pooled
	// ones apart; Warm counts those.
	Sandboxes map[State]int
	Warm      int
}

// Report reads the node's state now. Only the machine's figures can fail to
// be read; the error names which.
func (e *Engine) Report() (Report, error) {
	r := Report{CPUs: goruntime.NumCPU(), Capacity: e.Capacity(), DataDir: e.opts.DataDir,
		Sandboxes: e.stateCounts(), Warm: e.Warm()}
	pct, err := e.cpu.sample()
	if err != nil {
		return Report{}, fmt.Errorf("node report: %w", err)
	}
	r.CPUPercent = pct
	if r.MemoryTotal, r.MemoryUsed, err = hostMemory(); err != nil {
		return Report{}, fmt.Errorf("node report: %w", err)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(e.opts.DataDir, &fs); err != nil {
		return Report{}, fmt.Errorf("node report: statfs %s: %w", e.opts.DataDir, err)
	}
	r.DiskTotal = int64(fs.Blocks) * fs.Bsize
	r.DiskUsed = int64(fs.Blocks-fs.Bfree) * fs.Bsize
	if r.Mount, err = mountOf(e.opts.DataDir); err != nil {
		return Report{}, fmt.Errorf("node report: %w", err)
	}
	return r, nil
}

// Mount is one mounted file system.
type Mount struct {
	// Point is where it is mounted, Device what is mounted there (the
	// source of the mount), Type its file system type.
	Point, Device, Type string
}

// mountOf finds the mount that holds path, in /proc/self/mountinfo: the one
// mounted last at the longest mount point path is under.
func mountOf(path string) (Mount, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return Mount{}, fmt.Errorf("find the mount of %s: %w", path, err)
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return Mount{}, fmt.Errorf("find the mount of %s: %w", path, err)
	}
	var best Mount
	for _, line := range strings.Split(string(b), "\n") {
		m, ok := parseMountinfo(line)
		if ok && under(abs, m.Point) && len(m.Point) >= len(best.Point) {
			best = m
		}
	}
	if best.Point == "" {
		return Mount{}, fmt.Errorf("find the mount of %s: none in /proc/self/mountinfo", path)
	}
	return best, nil
}

// parseMountinfo reads one line of /proc/self/mountinfo: "id parent maj:min
// root point options [optional fields...] - type source super-options".
func parseMountinfo(line string) (Mount, bool) {
	pre, post, ok := strings.Cut(line, " - ")
	f, g := strings.Fields(pre), strings.Fields(post)
	if !ok || len(f) < 5 || len(g) < 2 {
		return Mount{}, false
	}
	return Mount{Point: procfs.UnescapeMount(f[4]), Type: g[0], Device: procfs.UnescapeMount(g[1])}, true
}

// under reports whether path is dir or inside it.
func under(path, dir string) bool {
	return dir == "/" || path == dir || strings.HasPrefix(path, dir+"/")
}

// stateCounts counts the node's sandboxes by state, with a zero for every
// state none is in.
func (e *Engine) stateCounts() map[State]int {
	counts := map[State]int{StateStarting: 0, StateRunning: 0, StatePausing: 0, StatePaused: 0, StateResuming: 0, StateDead: 0}
	for _, st := range e.List() {
		counts[st.State]++
	}
	return counts
}

// cpuSampler turns the host's cumulative CPU times into a use between two
// samples. The zero value is ready.
type cpuSampler struct {
	mu          sync.Mutex
	busy, total uint64 // at the previous sample; total 0 before the first
}

// sample returns the host's CPU use in percent since the previous sample (0
// on the first).
func (c *cpuSampler) sample() (float64, error) {
	t, err := procfs.ReadCPU("/proc/stat")
	if err != nil {
		return 0, fmt.Errorf("read the host's CPU times: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var pct float64
	if c.total != 0 && t.Total > c.total && t.Busy >= c.busy {
		pct = 100 * float64(t.Busy-c.busy) / float64(t.Total-c.total)
	}
	c.busy, c.total = t.Busy, t.Total
	return pct, nil
}

// hostMemory reads MemTotal and MemTotal less MemAvailable from
// /proc/meminfo, in bytes.
func hostMemory() (total, used int64, err error) {
	mem, err := procfs.ReadMeminfo("/proc/meminfo")
	if err != nil {
		return 0, 0, fmt.Errorf("read the host's memory: %w", err)
	}
	t, okT := mem["MemTotal"]
	avail, okA := mem["MemAvailable"]
	if !okT || !okA || t == 0 {
		return 0, 0, fmt.Errorf("read the host's memory: no MemTotal or MemAvailable in /proc/meminfo")
	}
	return int64(t), int64(t) - int64(min(avail, t)), nil
}
