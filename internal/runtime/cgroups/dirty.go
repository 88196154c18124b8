package cgroups

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Dirty-page limits the node sets when the host leaves them to ratios of all memory.
const (
	dirtyBackgroundBytes = 32 << 20
	dirtyBytes           = 128 << 20
)

// LimitDirtyPages caps the host's dirty page cache so that a sandbox writing a large
// file cannot fill its memory cgroup with dirty pages faster than they are written
// back: cgroup v1 does not throttle writers per cgroup, and a cgroup full of dirty
// pages gets its sandbox OOM-killed. The host's default ratios (10 and 20% of all
// memory) allow gigabytes of dirty pages. Limits an administrator set in bytes are
// left alone. It reports whether it changed anything.
func LimitDirtyPages() (bool, error) {
	const dir = "/proc/sys/vm/"
	current, err := os.ReadFile(dir + "dirty_bytes")
	if err != nil {
		return false, fmt.Errorf("limit dirty pages: %w", err)
	}
	if v, _ := strconv.ParseInt(strings.TrimSpace(string(current)), 10, 64); v != 0 {
		return false, nil
	}
	// Background first: the kernel keeps background below the hard limit.
	for _, s := range []struct {
		name  string
		value int
	}{{"dirty_background_bytes", dirtyBackgroundBytes}, {"dirty_bytes", dirtyBytes}} {
		if err := os.WriteFile(dir+s.name, []byte(strconv.Itoa(s.value)), 0); err != nil {
			return false, fmt.Errorf("limit dirty pages: %s: %w", s.name, err)
		}
	}
	return true, nil
}
