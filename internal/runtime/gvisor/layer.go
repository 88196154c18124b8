package gvisor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"lelantos.dev/lelantos/internal/runtime"
	"lelantos.dev/lelantos/internal/runtime/oci"
)

// filesImageMarker is a file runsc writes into every filesystem checkpoint.
const filesImageMarker = "fscheckpoint.pb"

// createArgs are the arguments of runsc create for a sandbox booted from cfg, which
// writes the sandbox's pid to pidFile: with cfg.FilesImage, its overlay's upper layer
// is filled from that filesystem checkpoint.
func createArgs(cfg runtime.Config, bundle, pidFile, id string) []string {
	args := []string{"create", "--bundle", bundle, "--pid-file", pidFile}
	if cfg.FilesImage != "" {
		args = append(args, "--fs-restore-image-path", cfg.FilesImage)
	}
	return append(args, id)
}

// SaveFiles saves the writable layer of sandbox id (the files it created, changed and
// deleted over its template tree) into the empty or absent directory dir with runsc's
// filesystem checkpoint, then stops and deletes the sandbox: its memory and processes
// are not kept. Config.FilesImage of a new sandbox of the same tree boots it with
// those files; the image is only read, so several sandboxes may boot from it.
func (r *Runtime) SaveFiles(ctx context.Context, id, dir string) error {
	st, err := r.cli.State(ctx, id)
	if err != nil {
		return fmt.Errorf("save the files of sandbox %s: %w", id, err)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return fmt.Errorf("save the files of sandbox %s: %w", id, err)
	}
	// The sandbox's kernel pauses while it writes, so the image is one moment of the
	// layer; then the sandbox exits.
	if _, err := r.cli.Run(ctx, "fscheckpoint", "--image-path", dir, "--leave-running=false", id); err != nil {
		return fmt.Errorf("save the files of sandbox %s: %w", id, err)
	}
	if _, err := os.Stat(filepath.Join(dir, filesImageMarker)); err != nil {
		return fmt.Errorf("save the files of sandbox %s: runsc wrote no image: %w", id, err)
	}
	// As after a checkpoint: runsc returns before the sandbox process has exited.
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if st.Pid > 0 {
		if err := runtime.WaitPid(waitCtx, st.Pid); err != nil {
			return fmt.Errorf("save the files of sandbox %s: the sandbox did not stop: %w", id, err)
		}
	}
	r.unwatch(id)
	r.cli.ForceDelete(id)
	_ = r.cg.Remove(oci.CgroupPath(id))
	return nil
}
