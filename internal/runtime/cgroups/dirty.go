package cgroups

import (
	"encoding/json"
	"errors"
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

// procVM is where the host's dirty page settings are.
const procVM = "/proc/sys/vm"

// dirtySettings are the host's four dirty page knobs. Of each pair the kernel uses
// the bytes value when it is not zero, else the ratio.
type dirtySettings struct {
	BackgroundRatio int64 `json:"dirty_background_ratio"`
	BackgroundBytes int64 `json:"dirty_background_bytes"`
	Ratio           int64 `json:"dirty_ratio"`
	Bytes           int64 `json:"dirty_bytes"`
}

// DirtyPageLimit is the node's cap on the host's dirty page cache, with what the
// host had before, so that Restore can put that back.
type DirtyPageLimit struct {
	dir, state string
	found      dirtySettings
	changed    bool
}

// LimitDirtyPages caps the host's dirty page cache so that a sandbox writing a large
// file cannot fill its memory cgroup with dirty pages faster than they are written
// back: cgroup v1 does not throttle writers per cgroup, and a cgroup full of dirty
// pages gets its sandbox OOM-killed. The host's default ratios (10 and 20% of all
// memory) allow gigabytes of dirty pages. Limits an administrator set in bytes are
// left alone.
//
// The settings it found are kept in stateFile until Restore puts them back, so
// that a node that stopped without restoring them (it crashed) still restores the
// host's own settings, not its cap, at its next stop.
func LimitDirtyPages(stateFile string) (*DirtyPageLimit, error) {
	return limitDirtyPages(procVM, stateFile)
}

func limitDirtyPages(dir, stateFile string) (*DirtyPageLimit, error) {
	d := &DirtyPageLimit{dir: dir, state: stateFile}
	now, err := readDirty(dir)
	if err != nil {
		return nil, fmt.Errorf("limit dirty pages: %w", err)
	}
	if b, err := os.ReadFile(stateFile); err == nil {
		var saved dirtySettings
		ours := json.Unmarshal(b, &saved) == nil && now.Bytes == dirtyBytes && now.BackgroundBytes == dirtyBackgroundBytes
		if ours { // our own cap, left by a node that did not stop cleanly
			d.found, d.changed = saved, true
			return d, nil
		}
		// Changed since, by hand or by a reboot: what is there now is the host's.
		if err := os.Remove(stateFile); err != nil {
			return nil, fmt.Errorf("limit dirty pages: %w", err)
		}
	}
	d.found = now
	if now.Bytes != 0 || now.BackgroundBytes != 0 {
		return d, nil // set in bytes on purpose
	}
	b, _ := json.Marshal(now)
	if err := os.WriteFile(stateFile, b, 0o600); err != nil {
		return nil, fmt.Errorf("limit dirty pages: record the host's settings: %w", err)
	}
	// Background first: the kernel keeps background below the hard limit.
	for _, s := range []struct {
		name  string
		value int64
	}{{"dirty_background_bytes", dirtyBackgroundBytes}, {"dirty_bytes", dirtyBytes}} {
		if err := writeVM(dir, s.name, s.value); err != nil {
			return nil, errors.Join(fmt.Errorf("limit dirty pages: %w", err), d.Restore())
		}
	}
	d.changed = true
	return d, nil
}

// Changed reports whether the node set the cap (else the host's settings stand).
func (d *DirtyPageLimit) Changed() bool { return d.changed }

// Restore puts the host's ratios back as LimitDirtyPages found them, if it set the
// cap: writing a ratio makes the kernel drop the bytes value (it reads 0 while the
// bytes value is set, so the write always changes it).
func (d *DirtyPageLimit) Restore() error {
	if !d.changed {
		return nil
	}
	if err := writeVM(d.dir, "dirty_ratio", d.found.Ratio); err != nil {
		return fmt.Errorf("restore dirty pages: %w", err)
	}
	if err := writeVM(d.dir, "dirty_background_ratio", d.found.BackgroundRatio); err != nil {
		return fmt.Errorf("restore dirty pages: %w", err)
	}
	if err := os.Remove(d.state); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("restore dirty pages: %w", err)
	}
	d.changed = false
	return nil
}

func readDirty(dir string) (dirtySettings, error) {
	var s dirtySettings
	for _, f := range []struct {
		name string
		v    *int64
	}{{"dirty_background_ratio", &s.BackgroundRatio}, {"dirty_background_bytes", &s.BackgroundBytes},
		{"dirty_ratio", &s.Ratio}, {"dirty_bytes", &s.Bytes}} {
		b, err := os.ReadFile(dir + "/" + f.name)
		if err != nil {
			return s, err
		}
		if *f.v, err = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err != nil {
			return s, fmt.Errorf("%s: %w", f.name, err)
		}
	}
	return s, nil
}

func writeVM(dir, name string, v int64) error {
	if err := os.WriteFile(dir+"/"+name, []byte(strconv.FormatInt(v, 10)), 0); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}
