package gvisor_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"lelantos.dev/lelantos/internal/engine/enginetest"
	"lelantos.dev/lelantos/internal/runtime"
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

// TestWaitExitCode: Wait reports the first process's exit status, however soon it
// exits after the start.
func TestWaitExitCode(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	state := t.TempDir()
	t.Cleanup(func() { _ = unix.Unmount(filepath.Join(state, "null-netns"), unix.MNT_DETACH) })
	rt, err := gvisor.New(gvisor.Options{Runsc: runscPath(t), StateDir: state})
	if err != nil {
		t.Fatalf("gvisor runtime: %v", err)
	}
	rootfs := enginetest.BaseRootfs(t)
	ctx := context.Background()
	tests := []struct {
		name   string
		script string
		want   int
	}{
		{"zero at once", "exit 0", 0},
		{"seven at once", "exit 7", 7},
		{"after a while", "sleep 1; exit 42", 42},
		{"a missing program", "exec /no/such/program", 127},
		{"killed by a signal", "kill -KILL $$; exec sleep 5", -1},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("exitcode%d", i)
			dir := t.TempDir()
			cfg := runtime.Config{
				RootfsPath: rootfs, Dir: dir, Args: []string{"/bin/sh", "-c", tc.script},
				CPUCount: 1, MemoryMB: 256, DiskSizeMB: 256, ConsolePath: filepath.Join(dir, "console.log"),
			}
			if err := rt.Start(ctx, id, cfg); err != nil {
				t.Fatal(err)
			}
			defer rt.Kill(ctx, id)
			wctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			exit, err := rt.Wait(wctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want >= 0 && exit.Code != tc.want {
				t.Fatalf("exit %+v, want code %d; console: %s", exit, tc.want, runtime.Tail(cfg.ConsolePath, 512))
			}
		})
	}
}
