package gvisor_test

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"lelantos.dev/lelantos/internal/runtime/conformance"
	"lelantos.dev/lelantos/internal/runtime/gvisor"
)

// runscPath is where the project's setup script installs the pinned runsc.
func runscPath(t *testing.T) string {
	if p := os.Getenv("LELANTOS_RUNSC"); p != "" {
		return p
	}
	dir := os.Getenv("LELANTOS_CACHE_DIR")
	if dir == "" {
		dir = "/var/cache/lelantos"
	}
	return dir + "/bin/runsc"
}

func TestConformance(t *testing.T) {
	state := t.TempDir()
	// runsc keeps a namespace mount in its state dir; a node keeps it, a test drops it.
	t.Cleanup(func() { _ = unix.Unmount(filepath.Join(state, "null-netns"), unix.MNT_DETACH) })
	rt, err := gvisor.New(gvisor.Options{Runsc: runscPath(t), StateDir: state})
	if err != nil {
		t.Fatalf("gvisor runtime (run scripts/install-runsc.sh first): %v", err)
	}
	conformance.Run(t, rt, conformance.Options{NetOctet: 250})
}
