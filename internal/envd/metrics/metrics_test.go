package metrics

import (
	"os"
	"path/filepath"
	"testing"
)

func TestSampleFromProc(t *testing.T) {
	proc := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(proc, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("meminfo", "MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    400 kB\nBuffers:          10 kB\nCached:          200 kB\n")
	cases := []struct {
		name    string
		stat    string
		wantPct float64
	}{
		{"first sample", "cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 1 2 3 4\n", 0},
		{"half busy since", "cpu  150 0 150 900 0 0 0 0 0 0\n", 50},
		{"iowait is idle", "cpu  150 0 150 950 50 0 0 0 0 0\n", 0},
		{"guest time not counted twice", "cpu  250 0 150 950 50 0 0 0 100 100\n", 100},
	}
	c := NewCollector(proc, proc)
	for _, tc := range cases {
		write("stat", tc.stat)
		s, err := c.Sample()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if s.CPUUsedPct != tc.wantPct {
			t.Fatalf("%s: cpu %v, want %v", tc.name, s.CPUUsedPct, tc.wantPct)
		}
		if s.MemTotal != 1000*1024 || s.MemUsed != 600*1024 || s.MemCache != 200*1024 || s.DiskTotal == 0 || s.CPUCount < 1 || s.Timestamp == 0 {
			t.Fatalf("%s: %+v", tc.name, s)
		}
	}
	write("stat", "garbage\n")
	if _, err := c.Sample(); err == nil {
		t.Fatal("a malformed /proc/stat was accepted")
	}
	if _, err := NewCollector(filepath.Join(proc, "missing"), "/").Sample(); err == nil {
		t.Fatal("a missing /proc was accepted")
	}
}
