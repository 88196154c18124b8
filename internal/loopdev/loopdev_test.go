package loopdev

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAttach: the device Attach returns is backed by the file it was given.
func TestAttach(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: loop devices")
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Skip("needs loop devices: /dev/loop-control is missing")
	}
	img := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(1 << 20); err != nil {
		t.Fatal(err)
	}
	dev, err := Attach(f, "disk.img")
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	backing, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(dev.Name()), "loop", "backing_file"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(backing)); got != img {
		t.Errorf("%s is backed by %q, want %q", dev.Name(), got, img)
	}
}
