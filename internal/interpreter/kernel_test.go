package interpreter_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/interpreter"
)

func startBash(t *testing.T) *interpreter.Kernel {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	k, err := interpreter.StartKernel(ctx, interpreter.KernelOptions{Name: "bash", Dirs: kernelDirs(t), Cwd: t.TempDir(),
		Env: []string{"PATH=/usr/bin:/bin", "HOME=/tmp"}, RuntimeDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	return k
}

// run executes code and returns the stream lines it produced.
func run(t *testing.T, ctx context.Context, k *interpreter.Kernel, code string) ([]map[string]any, *interpreter.ExecuteReply, error) {
	t.Helper()
	var lines []map[string]any
	reply, err := k.Execute(ctx, code, false, func(m *interpreter.Message) {
		if sh := interpreter.ShapeIOPub(m); sh.Line != nil {
			var v map[string]any
			if err := json.Unmarshal(sh.Line, &v); err != nil {
				t.Errorf("line %s: %v", sh.Line, err)
			}
			lines = append(lines, v)
		}
	})
	return lines, reply, err
}

func stdout(lines []map[string]any) string {
	var b strings.Builder
	for _, l := range lines {
		if l["type"] == "stdout" {
			b.WriteString(l["text"].(string))
		}
	}
	return b.String()
}

func TestBashKernelKeepsStateAndStreams(t *testing.T) {
	k := startBash(t)
	ctx := context.Background()
	cases := []struct {
		name, code, stdout string
		status             string
	}{
		{"variable set", "X=42; cd /; echo set", "set\n", "ok"},
		{"state kept", "echo $X; pwd", "42\n/\n", "ok"},
		{"function kept", "f() { echo \"f:$1\"; }\nf a\nf b", "f:a\nf:b\n", "ok"},
		{"non-zero status is an error", "echo before; false", "before\n", "error"},
		{"no trailing newline", "printf 'ü-partial'", "ü-partial", "ok"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			lines, reply, err := run(t, ctx, k, c.code)
			if err != nil {
				t.Fatal(err)
			}
			if got := stdout(lines); got != c.stdout {
				t.Errorf("stdout %q, want %q (lines %v)", got, c.stdout, lines)
			}
			if reply == nil || reply.Status != c.status {
				t.Errorf("reply %+v, want status %s", reply, c.status)
			}
			if lines[0]["type"] != "number_of_executions" {
				t.Errorf("first line %v, want the execution count", lines[0])
			}
		})
	}
}

func TestBashKernelStderrSeparate(t *testing.T) {
	k := startBash(t)
	lines, _, err := run(t, context.Background(), k, "echo out; echo err >&2")
	if err != nil {
		t.Fatal(err)
	}
	var errText string
	for _, l := range lines {
		if l["type"] == "stderr" {
			errText += l["text"].(string)
		}
	}
	if stdout(lines) != "out\n" || errText != "err\n" {
		t.Fatalf("stdout %q stderr %q, want out and err", stdout(lines), errText)
	}
}

func TestInterruptOnCancel(t *testing.T) {
	k := startBash(t)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err := run(t, ctx, k, "echo started; sleep 30; echo never")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want the context's deadline", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the interrupted cell took %s", d)
	}
	lines, reply, err := run(t, context.Background(), k, "echo next")
	if err != nil || stdout(lines) != "next\n" || reply.Status != "ok" {
		t.Fatalf("after the interrupt: %v %v %+v", err, lines, reply)
	}
}

func TestKernelThatExitsFailsToStart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := interpreter.StartKernel(ctx, interpreter.KernelOptions{Name: "broken", Dirs: kernelDirs(t), Cwd: "/", RuntimeDir: t.TempDir()})
	if !errors.Is(err, interpreter.ErrKernelDied) {
		t.Fatalf("err %v, want ErrKernelDied", err)
	}
	_, err = interpreter.StartKernel(ctx, interpreter.KernelOptions{Name: "nope", Dirs: kernelDirs(t), Cwd: "/", RuntimeDir: t.TempDir()})
	if !errors.Is(err, interpreter.ErrNoKernel) {
		t.Fatalf("err %v, want ErrNoKernel", err)
	}
}

func TestKernelDeathEndsExecution(t *testing.T) {
	k := startBash(t)
	_, _, err := run(t, context.Background(), k, "exit 3")
	if !errors.Is(err, interpreter.ErrKernelDied) {
		t.Fatalf("err %v, want ErrKernelDied", err)
	}
}

func TestReapStaleKernels(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	k, err := interpreter.StartKernel(ctx, interpreter.KernelOptions{Name: "bash", Dirs: kernelDirs(t), Cwd: "/",
		Env: []string{"PATH=/usr/bin:/bin"}, RuntimeDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	// As a server that died would leave it: the kernel runs, nobody drives it.
	interpreter.ReapStaleKernels(dir, slog.Default())
	select {
	case <-k.Dead():
	case <-time.After(10 * time.Second):
		t.Fatal("the stale kernel still runs")
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "kernel-*")); len(left) != 0 {
		t.Fatalf("files left: %v", left)
	}
}
