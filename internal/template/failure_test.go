package template_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"lelantos.dev/lelantos/internal/store"
	"lelantos.dev/lelantos/internal/template"
)

// TestBuildFailures: a failing RUN shows its output and leaves no template, version,
// work directory or cached layer of its own; an unsupported instruction fails with
// its line before anything runs.
func TestBuildFailures(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	layers := filepath.Join(h.dir, "templates", "layers")

	tests := []struct {
		name       string
		dockerfile string
		wantErr    error
		wantLog    []string
		wantLayers int // layers left by the build
	}{
		{
			name:       "failing RUN",
			dockerfile: "FROM base\nRUN echo step-one-ok\nRUN echo boom && false\nRUN echo never\n",
			wantErr:    template.ErrStepFailed,
			wantLog:    []string{"step-one-ok", "boom", "step 3/4 (line 3, RUN)", "returned a non-zero code: 1"},
			wantLayers: 1,
		},
		{
			name:       "exec form RUN of a missing program",
			dockerfile: "FROM base\nRUN [\"/no/such/program\", \"x\"]\n",
			wantErr:    template.ErrStepFailed,
			wantLog:    []string{"/no/such/program", "returned a non-zero code: 127"},
		},
		{
			name:       "instruction that cannot apply",
			dockerfile: "FROM base\nRUN echo never-runs\nONBUILD RUN true\n",
			wantErr:    template.ErrInvalid,
			wantLog:    []string{"Dockerfile line 3: ONBUILD: cannot apply"},
		},
		{
			name:       "secret mount without a secret",
			dockerfile: "FROM base\nRUN echo never-runs\nRUN --mount=type=secret,id=npmrc,required cat /run/secrets/npmrc\n",
			wantErr:    template.ErrInvalid,
			wantLog:    []string{"Dockerfile line 3: RUN: --mount=type=secret needs a secret"},
		},
		{
			name:       "unknown instruction",
			dockerfile: "FROM base\n\n# comment\nFETCH http://x\n",
			wantErr:    template.ErrInvalid,
			wantLog:    []string{"Dockerfile line 4: FETCH: unknown instruction"},
		},
		{
			name:       "image of a registry on a private address",
			dockerfile: "FROM 10.255.255.1:5000/python:3.12-slim\n",
			wantErr:    template.ErrRegistry,
			wantLog:    []string{"no template has that name", "registry on a private address: 10.255.255.1"},
		},
		{
			name:       "missing context file",
			dockerfile: "FROM base\nCOPY nothere.txt /\n",
			wantErr:    template.ErrInvalid,
			wantLog:    []string{"/nothere.txt not found in the build context"},
		},
		{
			name:       "ADD of a URL",
			dockerfile: "FROM base\nADD https://example.com/x.tar.gz /opt/\n",
			wantErr:    template.ErrInvalid,
			wantLog:    []string{"ADD of a URL (https://example.com/x.tar.gz) is not supported"},
		},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := countDir(t, layers)
			name := "fail" + string(rune('a'+i))
			var log syncBuffer
			_, err := h.builder.Build(ctx, template.BuildRequest{Name: name, Dockerfile: tc.dockerfile, ContextDir: t.TempDir()}, &log)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v, want %v\nlog:\n%s", err, tc.wantErr, log.String())
			}
			for _, w := range tc.wantLog {
				if !strings.Contains(log.String(), w) {
					t.Errorf("log lacks %q:\n%s", w, log.String())
				}
			}
			if strings.Contains(log.String(), "never") {
				t.Errorf("a step after the failure ran, or one before the refusal:\n%s", log.String())
			}
			if got := countDir(t, layers) - before; got != tc.wantLayers {
				t.Errorf("the build left %d layers, want %d", got, tc.wantLayers)
			}
			if _, err := h.db.GetTemplate(ctx, name); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("failed build registered a template: %v", err)
			}
			if _, err := os.Stat(filepath.Join(h.dir, "templates", "versions", name)); err == nil {
				ents, _ := os.ReadDir(filepath.Join(h.dir, "templates", "versions", name))
				if len(ents) > 0 {
					t.Errorf("failed build left a version: %v", ents)
				}
			}
			if n := countDir(t, filepath.Join(h.dir, "templates", "tmp")); n != 0 {
				t.Errorf("failed build left %d work directories", n)
			}
			builds, err := h.builder.Builds(name)
			if err != nil || len(builds) != 1 || builds[0].Status != template.BuildError || builds[0].Reason == "" {
				t.Fatalf("build records %+v, %v", builds, err)
			}
			entries, err := h.builder.BuildLogs(builds[0].BuildID, 0, 0)
			if err != nil || len(entries) == 0 || entries[len(entries)-1].Level != "error" {
				t.Fatalf("build log %+v, %v", entries, err)
			}
			if tail, _ := h.builder.BuildLogs(builds[0].BuildID, len(entries)-1, 0); len(tail) != 1 || tail[0] != entries[len(entries)-1] {
				t.Errorf("log from offset %d: %+v", len(entries)-1, tail)
			}
		})
	}
	if mounts, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mounts), filepath.Join(h.dir, "templates")) {
		t.Errorf("overlay mounts left behind")
	}
}

func countDir(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
