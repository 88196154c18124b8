package controlplane

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestBuildTemplateInvalid(t *testing.T) {
	ok := TemplateBuildRequest{Name: "web", Dockerfile: "FROM base\n"}
	with := func(f func(r *TemplateBuildRequest)) TemplateBuildRequest { r := ok; f(&r); return r }
	tests := []struct {
		name string
		req  TemplateBuildRequest
		want string
	}{
		{"no name", with(func(r *TemplateBuildRequest) { r.Name = "" }), "name: required"},
		{"upper case", with(func(r *TemplateBuildRequest) { r.Name = "Web" }), "name: "},
		{"starts with a dash", with(func(r *TemplateBuildRequest) { r.Name = "-web" }), "name: "},
		{"too long", with(func(r *TemplateBuildRequest) { r.Name = strings.Repeat("a", 64) }), "name: "},
		{"reserved base", with(func(r *TemplateBuildRequest) { r.Name = "base" }), `name: "base" is reserved`},
		{"reserved scratch", with(func(r *TemplateBuildRequest) { r.Name = "scratch" }), `name: "scratch" is reserved`},
		{"an alias of another template", with(func(r *TemplateBuildRequest) { r.Name = "large" }), `name: "large" is an alias of template "big"`},
		{"no dockerfile", with(func(r *TemplateBuildRequest) { r.Dockerfile = " \n" }), "dockerfile: required"},
		{"negative cpu", with(func(r *TemplateBuildRequest) { r.CPUCount = -1 }), "cpuCount: "},
		{"too many cpus", with(func(r *TemplateBuildRequest) { r.CPUCount = 65 }), "cpuCount: "},
		{"too little memory", with(func(r *TemplateBuildRequest) { r.MemoryMB = 64 }), "memoryMB: "},
		{"too small a disk", with(func(r *TemplateBuildRequest) { r.DiskSizeMB = 1 }), "diskSizeMB: "},
		{"ready without start", with(func(r *TemplateBuildRequest) { r.ReadyCmd = "true" }), "readyCmd: needs a startCmd"},
		{"bad build arg", with(func(r *TemplateBuildRequest) { r.BuildArgs = map[string]string{"A=B": "x"} }), "buildArgs: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, fb := templateHarness(t)
			_, _, err := h.svc.BuildTemplate(context.Background(), defTeam, tt.req)
			if !errors.Is(err, ErrInvalidArgument) || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("err = %v, want invalid argument starting with %q", err, tt.want)
			}
			if len(fb.started) != 0 {
				t.Errorf("the builder was asked to build")
			}
		})
	}
}

func TestBuildTemplateStatusAndLogs(t *testing.T) {
	h, fb := templateHarness(t)
	ctx := context.Background()
	tid, id, err := h.svc.BuildTemplate(ctx, defTeam, TemplateBuildRequest{Name: "big", Dockerfile: "FROM base\n", CPUCount: 2})
	if err != nil || tid != "big" {
		t.Fatalf("build: %q %q %v", tid, id, err)
	}
	if len(fb.started) != 1 || fb.started[0].CPUCount != 2 {
		t.Fatalf("builder got %+v", fb.started)
	}
	fb.logs[id] = []TemplateLogEntry{{Message: "one"}, {Message: "two"}, {Message: "three"}}
	for _, name := range []string{"big", "large"} {
		b, err := h.svc.TemplateBuildStatus(ctx, defTeam, name, id)
		if err != nil || b.Status != BuildBuilding || b.TemplateID != "big" {
			t.Errorf("status via %s: %+v %v", name, b, err)
		}
	}
	logs, err := h.svc.TemplateBuildLogs(ctx, defTeam, "big", id, 1, 1)
	if err != nil || len(logs) != 1 || logs[0].Message != "two" {
		t.Errorf("logs from 1, limit 1: %+v %v", logs, err)
	}
	for _, tt := range []struct{ template, build string }{{"base", id}, {"nope", id}, {"big", "no-such-build"}} {
		if _, err := h.svc.TemplateBuildStatus(ctx, defTeam, tt.template, tt.build); !errors.Is(err, ErrNotFound) {
			t.Errorf("status of %s/%s: %v, want not found", tt.template, tt.build, err)
		}
	}
	if _, err := h.svc.TemplateBuildLogs(ctx, defTeam, "big", id, -1, 0); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("negative offset: %v", err)
	}
}

func TestListAndGetTemplates(t *testing.T) {
	h, fb := templateHarness(t)
	ctx := context.Background()
	old := time.Now().Add(-time.Hour)
	fb.builds["b1"] = &TemplateBuild{BuildID: "b1", TemplateID: "big", Status: BuildReady, StartedAt: old}
	fb.builds["b2"] = &TemplateBuild{BuildID: "b2", TemplateID: "big", Status: BuildError, StartedAt: time.Now()}
	list, err := h.svc.ListTemplates(ctx, defTeam)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]*TemplateInfo{}
	for _, i := range list {
		byID[i.Template.ID] = i
	}
	base := byID["base"]
	if base == nil || base.Template.CPUCount != 2 || base.Template.MemoryMB != 512 || base.Template.EnvdVersion != DefaultEnvdVersion ||
		len(base.Builds) != 1 || base.BuildStatus() != BuildReady {
		t.Errorf("base: %+v builds %v, want defaults and one ready build", base.Template, base.Builds)
	}
	big, err := h.svc.GetTemplate(ctx, defTeam, "large")
	if err != nil {
		t.Fatal(err)
	}
	// The store's record names build "" for big: it is added to the builder's two.
	if len(big.Builds) != 3 || big.Builds[0].BuildID != "b2" || big.BuildStatus() != BuildError || big.Template.CPUCount != 4 {
		t.Errorf("big: %+v, builds %v", big.Template, big.Builds)
	}
	if _, err := h.svc.GetTemplate(ctx, defTeam, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("get unknown: %v", err)
	}
}

func TestDeleteTemplate(t *testing.T) {
	h, fb := templateHarness(t)
	ctx := context.Background()
	if err := h.svc.DeleteTemplate(ctx, defTeam, "base"); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "default template") {
		t.Errorf("delete base: %v, want conflict", err)
	}
	if err := h.svc.DeleteTemplate(ctx, defTeam, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete unknown: %v, want not found", err)
	}
	sb := h.create(t, CreateRequest{TemplateID: "large"})
	if err := h.svc.Pause(ctx, defTeam, sb.ID); err != nil {
		t.Fatal(err)
	}
	if err := h.svc.DeleteTemplate(ctx, defTeam, "large"); !errors.Is(err, ErrConflict) {
		t.Errorf("delete with a paused sandbox: %v, want conflict", err)
	}
	if err := h.svc.Kill(ctx, defTeam, sb.ID); err != nil {
		t.Fatal(err)
	}
	if err := h.svc.DeleteTemplate(ctx, defTeam, "large"); err != nil {
		t.Fatalf("delete after the sandbox was killed: %v", err)
	}
	if len(fb.deleted) != 1 || fb.deleted[0] != "big" {
		t.Errorf("builder deleted %v, want [big] (the ID, not the alias)", fb.deleted)
	}
	if _, err := h.svc.GetTemplate(ctx, defTeam, "big"); !errors.Is(err, ErrNotFound) {
		t.Errorf("get after delete: %v", err)
	}
}

func TestTemplatesWithoutBuilder(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	if _, _, err := h.svc.BuildTemplate(ctx, defTeam, TemplateBuildRequest{Name: "web", Dockerfile: "FROM base"}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("build: %v, want unavailable", err)
	}
	if err := h.svc.DeleteTemplate(ctx, defTeam, "big"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("delete: %v, want unavailable", err)
	}
	if list, err := h.svc.ListTemplates(ctx, defTeam); err != nil || len(list) != 3 {
		t.Errorf("list: %d %v, want the store's 3", len(list), err)
	}
}
