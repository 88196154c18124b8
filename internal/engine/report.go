package engine

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
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
	return Mount{Point: unescapeMount(f[4]), Type: g[0], Device: unescapeMount(g[1])}, true
}

// unescapeMount undoes the octal escapes (\040 for a space) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
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
	busy, total, err := hostCPUTimes()
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var pct float64
	if c.total != 0 && total > c.total && busy >= c.busy {
		pct = 100 * float64(busy-c.busy) / float64(total-c.total)
	}
	c.busy, c.total = busy, total
	return pct, nil
}

// hostCPUTimes reads the busy and total CPU time of all CPUs from the first
// line of /proc/stat, in clock ticks; idle and iowait are not busy.
func hostCPUTimes() (busy, total uint64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, fmt.Errorf("read the host's CPU times: %w", err)
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	fields := strings.Fields(string(line))
	if len(fields) < 6 || fields[0] != "cpu" {
		return 0, 0, fmt.Errorf("read the host's CPU times: unexpected /proc/stat line %q", line)
	}
	for i, f := range fields[1:] {
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("read the host's CPU times: field %d of /proc/stat: %w", i+1, err)
		}
		// guest and guest_nice (fields 9 and 10) are already in user and nice.
		if i >= 8 {
			break
		}
		total += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy, total, nil
}

// hostMemory reads MemTotal and MemTotal less MemAvailable from
// /proc/meminfo, in bytes.
func hostMemory() (total, used int64, err error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, 0, fmt.Errorf("read the host's memory: %w", err)
	}
	defer f.Close()
	var avail int64 = -1
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "MemTotal" && name != "MemAvailable") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("read the host's memory: %s: %w", name, err)
		}
		if name == "MemTotal" {
			total = kb << 10
		} else {
			avail = kb << 10
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, fmt.Errorf("read the host's memory: %w", err)
	}
	if total == 0 || avail < 0 {
		return 0, 0, fmt.Errorf("read the host's memory: no MemTotal or MemAvailable in /proc/meminfo")
	}
	return total, total - avail, nil
}
