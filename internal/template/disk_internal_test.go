package template

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"lelantos.dev/lelantos/internal/store"
)

// TestStepDisk: the step disk holds what fits, refuses more with ENOSPC, and a
// builder started after a crash unmounts one left behind and frees its loop device.
func TestStepDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (mounts, loop devices)")
	}
	dataDir := t.TempDir()
	work := filepath.Join(dataDir, "templates", tmpDir, "step-crashed")
	mnt := filepath.Join(work, "disk")
	if err := os.MkdirAll(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	d, err := mountStepDisk(context.Background(), filepath.Join(work, "disk.img"), mnt, 64)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "fits"), make([]byte, 32<<20), 0o644); err != nil {
		t.Fatalf("32 MB on a 64 MB disk: %v", err)
	}
	err = os.WriteFile(filepath.Join(mnt, "too-big"), make([]byte, 64<<20), 0o644)
	if !errors.Is(err, unix.ENOSPC) || !d.full() {
		t.Fatalf("64 more MB: %v (full %v)", err, d.full())
	}
	var st unix.Stat_t
	if err := unix.Stat(d.image, &st); err != nil || st.Blocks*512 > 70<<20 {
		t.Fatalf("the disk's file takes %d bytes on the host: %v", st.Blocks*512, err)
	}
	// The process stops here; the next builder cleans up.
	db, err := store.Open(context.Background(), filepath.Join(dataDir, "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	b, err := NewBuilder(BuilderOptions{DataDir: dataDir, Store: db})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if mounts, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mounts), work) {
		t.Errorf("the crashed step's disk is still mounted")
	}
	if _, err := os.Stat(work); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the crashed step's directory is still there: %v", err)
	}
	files, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, f := range files {
		if data, _ := os.ReadFile(f); strings.HasPrefix(string(data), work) {
			t.Errorf("loop device %s still holds the crashed step's disk", f)
		}
	}
}
