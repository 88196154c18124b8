package cgroups

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSetCPUShares(t *testing.T) {
	tests := []struct {
		name   string
		v2     bool
		shares uint64
		file   string
		want   string
	}{
		{"v1 default", false, 1024, "cpu/lelantos/s/cpu.shares", "1024"},
		{"v1 background", false, 64, "cpu/lelantos/s/cpu.shares", "64"},
		{"v1 below the minimum", false, 0, "cpu/lelantos/s/cpu.shares", "2"},
		{"v1 above the maximum", false, 1 << 20, "cpu/lelantos/s/cpu.shares", "262144"},
		{"v2 default", true, 1024, "lelantos/s/cpu.weight", "39"},
		{"v2 background", true, 64, "lelantos/s/cpu.weight", "3"},
		{"v2 minimum", true, 2, "lelantos/s/cpu.weight", "1"},
		{"v2 maximum", true, 262144, "lelantos/s/cpu.weight", "10000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			p := filepath.Join(root, tc.file)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			h := Hierarchy{Root: root, V2: tc.v2}
			if err := h.SetCPUShares("/lelantos/s", tc.shares); err != nil {
				t.Fatalf("SetCPUShares: %v", err)
			}
			got, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if strings.TrimSpace(string(got)) != tc.want {
				t.Errorf("%s = %q, want %q", tc.file, got, tc.want)
			}
		})
	}
}

func TestSetCPUSharesMissingCgroup(t *testing.T) {
	h := Hierarchy{Root: t.TempDir()}
	if err := h.SetCPUShares("/lelantos/gone", 1024); err == nil {
		t.Fatal("SetCPUShares of a cgroup that does not exist: no error")
	}
}
