package template_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"lelantos.dev/lelantos/internal/store"
	"lelantos.dev/lelantos/internal/telemetry/telemetrytest"
	"lelantos.dev/lelantos/internal/template"
)

func TestBuildResult(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, "ready"},
		{fmt.Errorf("build template x: %w", template.ErrStepFailed), "step_failed"},
		{fmt.Errorf("build template x: %w", template.ErrInvalid), "invalid"},
		{fmt.Errorf("build template x: %w", template.ErrRegistry), "registry"},
		{fmt.Errorf("build template x: %w", context.Canceled), "canceled"},
		{errors.New("disk on fire"), "error"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := template.BuildResult(tt.err); got != tt.want {
				t.Fatalf("BuildResult(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}

// TestBuildsObserved: every build that runs is timed under how it ended; a
// request refused before it runs is not a build.
func TestBuildsObserved(t *testing.T) {
	dir := t.TempDir()
	db, err := store.Open(context.Background(), filepath.Join(dir, "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	base := filepath.Join(dir, "base")
	if err := os.MkdirAll(filepath.Join(base, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m, err := template.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := template.NewBuilder(template.BuilderOptions{DataDir: filepath.Join(dir, "node"), Store: db, Observer: m,
		BaseRootfs: func() (string, error) { return base, nil }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	ctx := context.Background()
	if _, err := b.Build(ctx, template.BuildRequest{Name: "envonly", Dockerfile: "FROM base\nENV GREETING=hello\n"}, nil); err != nil {
		t.Fatalf("build: %v", err)
	}
	if _, err := b.Build(ctx, template.BuildRequest{Name: "broken", Dockerfile: "FROM base\nFROBNICATE now\n"}, nil); !errors.Is(err, template.ErrInvalid) {
		t.Fatalf("build of an unknown instruction: %v, want ErrInvalid", err)
	}
	if _, err := b.Build(ctx, template.BuildRequest{Name: "Bad Name!", Dockerfile: "FROM base\n"}, nil); !errors.Is(err, template.ErrInvalid) {
		t.Fatalf("build with a bad name: %v, want ErrInvalid", err)
	}
	f := telemetrytest.Gather(t, reg)
	const name = "lelantos_template_build_duration_seconds"
	if got := f.Sum(name, "result", "ready"); got != 1 {
		t.Errorf("%s{result=ready} = %v, want 1", name, got)
	}
	if got := f.Sum(name, "result", "invalid"); got != 1 {
		t.Errorf("%s{result=invalid} = %v, want 1 (the refused request is no build)", name, got)
	}
	if got := f.Sum(name); got != 2 {
		t.Errorf("%v builds timed, want 2", got)
	}
}
