package interpreter

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ReapStaleKernels kills the kernels a previous server left running from
// runtimeDir (it died; its kernels are nobody's now) and removes their files.
// A kernel is known by the pid file beside its connection file, and killed
// only when that process still runs with that connection file.
func ReapStaleKernels(runtimeDir string, log *slog.Logger) {
	pids, _ := filepath.Glob(filepath.Join(runtimeDir, "kernel-*.pid"))
	for _, pf := range pids {
		conn := strings.TrimSuffix(pf, ".pid") + ".json"
		b, err := os.ReadFile(pf)
		pid, perr := strconv.Atoi(strings.TrimSpace(string(b)))
		if err == nil && perr == nil && pid > 1 {
			cmdline, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
			if err == nil && bytes.Contains(cmdline, []byte(filepath.Base(conn))) {
				_ = syscall.Kill(-pid, syscall.SIGKILL)
				_ = syscall.Kill(pid, syscall.SIGKILL)
				log.Info("killed a kernel a previous server left", "pid", pid)
			}
		}
		_ = os.Remove(pf)
		_ = os.Remove(conn)
	}
}
