package cgroups

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestDirtyPagesOnTheHost: on the real host, the cap is set only where the host
// uses ratios, and Restore leaves the host's settings exactly as they were.
func TestDirtyPagesOnTheHost(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to write /proc/sys/vm")
	}
	before, err := readDirty(procVM)
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "dirty-pages.json")
	lim, err := LimitDirtyPages(state)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lim.Restore() })
	during, err := readDirty(procVM)
	if err != nil {
		t.Fatal(err)
	}
	if inBytes := before.Bytes != 0 || before.BackgroundBytes != 0; inBytes {
		if lim.Changed() || during != before {
			t.Fatalf("the host's own byte limits %+v became %+v", before, during)
		}
	} else if !lim.Changed() || during.Bytes != dirtyBytes || during.BackgroundBytes != dirtyBackgroundBytes {
		t.Fatalf("with ratios %+v the node set %+v (changed %v), want its cap", before, during, lim.Changed())
	}
	if err := lim.Restore(); err != nil {
		t.Fatal(err)
	}
	after, err := readDirty(procVM)
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Fatalf("after Restore the host has %+v, want %+v as before", after, before)
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("the record of the host's settings is still there: %v", err)
	}
}

// TestDirtyPagesDecisions: what the node does with each state it can find the
// settings in, including its own cap left by a node that crashed. A directory of
// plain files stands in for /proc/sys/vm, so the kernel's own rule (writing a
// ratio clears the bytes value) is not played here; the host test covers it.
func TestDirtyPagesDecisions(t *testing.T) {
	ratios := dirtySettings{BackgroundRatio: 10, Ratio: 20}
	capped := dirtySettings{BackgroundBytes: dirtyBackgroundBytes, Bytes: dirtyBytes}
	admin := dirtySettings{BackgroundBytes: 64 << 20, Bytes: 256 << 20}
	tests := []struct {
		name        string
		host        dirtySettings
		saved       *dirtySettings // a record left by an earlier node
		wantChanged bool
		wantNow     dirtySettings
		wantRatios  [2]int64 // background and hard ratio written by Restore
	}{
		{"ratios: capped", ratios, nil, true, dirtySettings{BackgroundRatio: 10, Ratio: 20, BackgroundBytes: dirtyBackgroundBytes, Bytes: dirtyBytes}, [2]int64{10, 20}},
		{"bytes set by hand: left alone", admin, nil, false, admin, [2]int64{0, 0}},
		{"our cap after a crash: the saved ratios come back", capped, &dirtySettings{BackgroundRatio: 5, Ratio: 15}, true, capped, [2]int64{5, 15}},
		{"record older than a change by hand: dropped", admin, &dirtySettings{BackgroundRatio: 5, Ratio: 15}, false, admin, [2]int64{0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeAll(t, dir, tt.host)
			state := filepath.Join(t.TempDir(), "dirty-pages.json")
			if tt.saved != nil {
				b, _ := json.Marshal(tt.saved)
				if err := os.WriteFile(state, b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			lim, err := limitDirtyPages(dir, state)
			if err != nil {
				t.Fatal(err)
			}
			now, _ := readDirty(dir)
			if lim.Changed() != tt.wantChanged || now != tt.wantNow {
				t.Fatalf("changed %v, settings %+v; want %v, %+v", lim.Changed(), now, tt.wantChanged, tt.wantNow)
			}
			if _, err := os.Stat(state); os.IsNotExist(err) == tt.wantChanged {
				t.Errorf("record exists: %v, want %v", !os.IsNotExist(err), tt.wantChanged)
			}
			writeAll(t, dir, dirtySettings{}) // so that Restore's writes show
			if err := lim.Restore(); err != nil {
				t.Fatal(err)
			}
			got, _ := readDirty(dir)
			if [2]int64{got.BackgroundRatio, got.Ratio} != tt.wantRatios {
				t.Errorf("Restore wrote ratios %d/%d, want %v", got.BackgroundRatio, got.Ratio, tt.wantRatios)
			}
			if _, err := os.Stat(state); !os.IsNotExist(err) {
				t.Errorf("record still there after Restore: %v", err)
			}
		})
	}
}

func writeAll(t *testing.T, dir string, s dirtySettings) {
	t.Helper()
	for name, v := range map[string]int64{"dirty_background_ratio": s.BackgroundRatio, "dirty_background_bytes": s.BackgroundBytes,
		"dirty_ratio": s.Ratio, "dirty_bytes": s.Bytes} {
		if err := writeVM(dir, name, v); err != nil {
			t.Fatal(err)
		}
	}
}
