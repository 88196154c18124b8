// Package cgroups reads and adjusts the host cgroups of sandboxes, on cgroup v1 and v2.
//
// Runtimes create each sandbox's cgroup from its OCI spec; this package then gives the
// cgroup headroom over the spec's memory limit, samples usage and counts OOM kills.
package cgroups

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"lelantos.dev/lelantos/internal/runtime"
)

// Hierarchy is the host's cgroup layout, found once by Detect.
type Hierarchy struct {
	// Root is the cgroup filesystem's mount point, normally /sys/fs/cgroup.
	Root string
	// V2 is true on a unified (v2 only) host.
	V2 bool
}

// v1Controllers are the v1 hierarchies a sandbox has a directory in.
var v1Controllers = []string{"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids"}

// Detect reports the layout of the host's cgroups under root ("" for /sys/fs/cgroup).
func Detect(root string) Hierarchy {
	if root == "" {
		root = "/sys/fs/cgroup"
	}
	_, err := os.Stat(filepath.Join(root, "cgroup.controllers"))
	return Hierarchy{Root: root, V2: err == nil}
}

func (h Hierarchy) file(controller, path, name string) string {
	if h.V2 {
		return filepath.Join(h.Root, path, name)
	}
	return filepath.Join(h.Root, controller, path, name)
}

// Exists reports whether the cgroup at path exists.
func (h Hierarchy) Exists(path string) bool {
	dir := filepath.Join(h.Root, path)
	if !h.V2 {
		dir = filepath.Join(h.Root, "memory", path)
	}
	_, err := os.Stat(dir)
	return err == nil
}

// SetMemoryLimit sets the hard memory limit of the cgroup at path.
func (h Hierarchy) SetMemoryLimit(path string, limit int64) error {
	if h.V2 {
		return writeInt(h.file("", path, "memory.max"), limit)
	}
	memsw := h.file("memory", path, "memory.memsw.limit_in_bytes")
	mem := h.file("memory", path, "memory.limit_in_bytes")
	// v1 keeps mem <= memsw: raise memsw first when growing, mem first when shrinking.
	if err := writeInt(mem, limit); err != nil {
		if _, statErr := os.Stat(memsw); statErr != nil {
			return fmt.Errorf("set memory limit of %s: %w", path, err)
		}
		if err := writeInt(memsw, limit); err != nil {
			return fmt.Errorf("set memory limit of %s: %w", path, err)
		}
		return writeInt(mem, limit)
	}
	if _, err := os.Stat(memsw); err == nil {
		_ = writeInt(memsw, limit)
	}
	return nil
}

// Stats samples the cgroup at path.
func (h Hierarchy) Stats(path string) (runtime.Stats, error) {
	s := runtime.Stats{Time: time.Now()}
	var err error
	if h.V2 {
		usec, e := statField(h.file("", path, "cpu.stat"), "usage_usec")
		s.CPUNanos, err = usec*1000, e
		if err == nil {
			s.MemoryBytes, err = readUint(h.file("", path, "memory.current"))
		}
		if err == nil {
			s.MemoryCacheBytes, err = statField(h.file("", path, "memory.stat"), "file")
		}
	} else {
		s.CPUNanos, err = readUint(h.file("cpuacct", path, "cpuacct.usage"))
		if err == nil {
			s.MemoryBytes, err = readUint(h.file("memory", path, "memory.usage_in_bytes"))
		}
		if err == nil {
			s.MemoryCacheBytes, err = statField(h.file("memory", path, "memory.stat"), "cache")
		}
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return s, fmt.Errorf("stats of cgroup %s: %w", path, runtime.ErrNotFound)
		}
		return s, fmt.Errorf("stats of cgroup %s: %w", path, err)
	}
	s.Pids, _ = readUint(h.file("pids", path, "pids.current"))
	s.OOMKills, _ = h.OOMKills(path)
	return s, nil
}

// OOMKills returns how many processes the kernel killed in the cgroup for memory.
func (h Hierarchy) OOMKills(path string) (uint64, error) {
	if h.V2 {
		return statField(h.file("", path, "memory.events"), "oom_kill")
	}
	return statField(h.file("memory", path, "memory.oom_control"), "oom_kill")
}

// Remove deletes the cgroup at path in every hierarchy; a missing one is no error.
func (h Hierarchy) Remove(path string) error {
	dirs := []string{filepath.Join(h.Root, path)}
	if !h.V2 {
		dirs = dirs[:0]
		for _, c := range v1Controllers {
			dirs = append(dirs, filepath.Join(h.Root, c, path))
		}
	}
	var errs []error
	for _, d := range dirs {
		if err := os.Remove(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove cgroup %s: %w", path, err)
	}
	return nil
}

// SetCPUShares sets the weight of the cgroup at path in contended CPU time, in
// v1 cpu.shares units (2..262144; 1024 is a cgroup's default); it stores
// CPUWeightFor(shares). The weight only matters while the CPU is busy: an idle
// CPU goes to any cgroup that asks, whatever its weight.
func (h Hierarchy) SetCPUShares(path string, shares uint64) error {
	if err := writeInt(h.cpuWeightFile(path), int64(h.CPUWeightFor(shares))); err != nil {
		return fmt.Errorf("set cpu weight of %s: %w", path, err)
	}
	return nil
}

// CPUWeightFor is what SetCPUShares stores for shares: on v1 the shares
// clamped to 2..262144, on v2 their cpu.weight (1..10000, default 100), mapped
// as container runtimes map it.
func (h Hierarchy) CPUWeightFor(shares uint64) uint64 {
	shares = min(max(shares, 2), 262144)
	if h.V2 {
		return 1 + ((shares-2)*9999)/262142
	}
	return shares
}

// CPUWeight reads the weight the cgroup at path has, as the hierarchy stores
// it (cpu.shares on v1, cpu.weight on v2; compare with CPUWeightFor).
func (h Hierarchy) CPUWeight(path string) (uint64, error) {
	v, err := readUint(h.cpuWeightFile(path))
	if err != nil {
		return 0, fmt.Errorf("cpu weight of %s: %w", path, err)
	}
	return v, nil
}

func (h Hierarchy) cpuWeightFile(path string) string {
	if h.V2 {
		return h.file("", path, "cpu.weight")
	}
	return h.file("cpu", path, "cpu.shares")
}

// Freeze stops (or with thaw, restarts) every task of the cgroup at path.
func (h Hierarchy) Freeze(path string, freeze bool) error {
	if h.V2 {
		v := "0"
		if freeze {
			v = "1"
		}
		return os.WriteFile(h.file("", path, "cgroup.freeze"), []byte(v), 0)
	}
	v := "THAWED"
	if freeze {
		v = "FROZEN"
	}
	return os.WriteFile(h.file("freezer", path, "freezer.state"), []byte(v), 0)
}

func writeInt(path string, v int64) error {
	return os.WriteFile(path, []byte(strconv.FormatInt(v, 10)), 0)
}

func readUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return 0, nil
	}
	return strconv.ParseUint(s, 10, 64)
}

// statField reads "key value" lines and returns the value of key, 0 when absent.
func statField(path, key string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == key {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, nil
}
