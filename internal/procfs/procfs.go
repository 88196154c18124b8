// Package procfs reads the Linux /proc files that both the host side (the
// node's report, the template builder's mounts) and the sandbox side (envd's
// metrics) parse: the aggregate CPU times of /proc/stat, /proc/meminfo, and
// the escapes of mountinfo's paths.
package procfs

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// CPUTimes is one reading of the aggregate "cpu" line of /proc/stat, in
// clock ticks: Busy is all but idle and iowait, Total everything (guest time
// is already in user time, so it is not added again).
type CPUTimes struct{ Busy, Total uint64 }

// ReadCPU reads the aggregate CPU times from the stat file at path.
func ReadCPU(path string) (CPUTimes, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return CPUTimes{}, fmt.Errorf("read cpu times: %w", err)
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	fields := strings.Fields(string(line))
	if len(fields) < 5 || fields[0] != "cpu" {
		return CPUTimes{}, fmt.Errorf("read cpu times: unexpected %s format", path)
	}
	var t CPUTimes
	for i, f := range fields[1:] {
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return CPUTimes{}, fmt.Errorf("read cpu times: %w", err)
		}
		if i >= 8 {
			break // guest time is already counted in user time
		}
		t.Total += v
		if i != 3 && i != 4 { // idle and iowait
			t.Busy += v
		}
	}
	return t, nil
}

// ReadMeminfo reads the meminfo file at path into bytes per key (values in
// kB are converted; lines that are not "Key: number [kB]" are skipped).
func ReadMeminfo(path string) (map[string]uint64, error) {
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

// UnescapeMount undoes mountinfo's octal escapes in a path (\040 for a
// space).
func UnescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
