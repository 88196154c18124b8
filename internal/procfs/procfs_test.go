package procfs

import (
	"os"
	"path/filepath"
	"testing"
)

func write(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadCPU(t *testing.T) {
	for _, tt := range []struct {
		text string
		want CPUTimes
		ok   bool
	}{
		// user nice system idle iowait irq softirq steal guest guest_nice
		{"cpu  10 1 5 100 4 1 2 0 7 3\ncpu0 1 1 1 1 1\n", CPUTimes{Busy: 19, Total: 123}, true},
		{"cpu 1 2 3 4\n", CPUTimes{Busy: 6, Total: 10}, true},
		{"cpu 1 2 3\n", CPUTimes{}, false},
		{"intr 1 2 3 4 5\n", CPUTimes{}, false},
		{"cpu 1 x 3 4 5\n", CPUTimes{}, false},
	} {
		got, err := ReadCPU(write(t, tt.text))
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("ReadCPU(%q) = %+v, %v; want %+v, ok %v", tt.text, got, err, tt.want, tt.ok)
		}
	}
}

func TestReadMeminfo(t *testing.T) {
	got, err := ReadMeminfo(write(t, "MemTotal:       2048 kB\nMemAvailable:   1024 kB\nHugePages_Total:     3\nbroken line\nBad: x kB\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{"MemTotal": 2 << 20, "MemAvailable": 1 << 20, "HugePages_Total": 3}
	if len(got) != len(want) {
		t.Fatalf("ReadMeminfo = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d", k, got[k], v)
		}
	}
}

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{
		`/plain`: "/plain", `/my\040data`: "/my data", `/tab\011x`: "/tab\tx", `/bad\09`: `/bad\09`, `/end\04`: `/end\04`,
	} {
		if got := UnescapeMount(in); got != want {
			t.Errorf("UnescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}
