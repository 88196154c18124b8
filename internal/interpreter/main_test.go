package interpreter_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"lelantos.dev/lelantos/internal/interpreter/bashkernel"
)

// kernelEnv, when set, makes the test binary the bash kernel: the kernelspecs
// the tests write run it so, as the interpreter binary runs it in sandboxes.
const kernelEnv = "INTERPRETER_TEST_BASH_KERNEL"

func TestMain(m *testing.M) {
	if os.Getenv(kernelEnv) != "" {
		if err := bashkernel.Run(context.Background(), os.Args[len(os.Args)-1], slog.Default()); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// kernelDirs writes kernelspecs into a temporary directory: "bash" (this
// binary as the bash kernel), "late" (this binary as a kernel whose output
// lags, see lateKernelEnv) and "broken" (a kernel that exits at once).
func kernelDirs(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	specs := map[string]map[string]any{
		"bash":   {"argv": []string{exe, "{connection_file}"}, "language": "bash", "env": map[string]string{kernelEnv: "1"}},
		"late":   {"argv": []string{exe, "{connection_file}"}, "language": "none", "env": map[string]string{lateKernelEnv: "1"}},
		"broken": {"argv": []string{"/bin/false", "{connection_file}"}, "language": "none"},
	}
	for name, spec := range specs {
		b, _ := json.Marshal(spec)
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, "kernel.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return []string{dir}
}
