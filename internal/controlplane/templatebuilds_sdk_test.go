package controlplane

import (
	"context"
	"errors"
	"strings"
	"testing"

	"lelantos.dev/lelantos/internal/store"
)

// TestRequestedBuilds: E2B's two-step build. A requested build waits (and
// holds its team's build slot), uploads are per team, the start goes to the
// builder once, and another team's build or template is not found.
func TestRequestedBuilds(t *testing.T) {
	h, fb := templateHarness(t)
	ctx := context.Background()
	one := 1
	beta := newTeam(t, h, "beta", store.QuotaSettings{MaxBuilds: &one})

	res, err := h.svc.RequestTemplateBuild(ctx, beta.ID, BuildReservation{Name: "app", Tags: []string{"v1", "V1", "latest"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.TemplateID == "app" || !strings.HasPrefix(res.TemplateID, "app-") || strings.Join(res.Tags, ",") != "v1,latest" {
		t.Errorf("requested %+v", res)
	}
	r := fb.reserved[res.BuildID]
	if r.Name != res.TemplateID || r.CPUCount != DefaultBuildCPU || r.MemoryMB != DefaultBuildMemoryMB {
		t.Errorf("reserved %+v", r)
	}
	// The waiting build holds the team's only slot, across syncs.
	if _, err := h.svc.RequestTemplateBuild(ctx, beta.ID, BuildReservation{Name: "other"}); !errors.Is(err, ErrQuota) {
		t.Errorf("a second build over max-builds 1: %v, want ErrQuota", err)
	}
	if b, err := h.svc.TemplateBuildStatus(ctx, beta.ID, "app", res.BuildID); err != nil || b.Status != BuildWaiting {
		t.Errorf("status of a requested build: %+v, %v", b, err)
	}

	hash := strings.Repeat("ab", 32)
	for _, tt := range []struct {
		team, template, hash string
		want                 error
	}{
		{beta.ID, "app", "XYZ", ErrInvalidArgument},
		{defTeam, "app", hash, ErrNotFound},
		{beta.ID, "nope", hash, ErrNotFound},
	} {
		if _, err := h.svc.TemplateFileUpload(ctx, tt.team, tt.template, tt.hash); !errors.Is(err, tt.want) {
			t.Errorf("upload link of %s for team %s: %v, want %v", tt.template, tt.team, err, tt.want)
		}
	}
	if err := h.svc.PutTemplateFile(ctx, beta.ID, "app", hash, strings.NewReader("tar")); err != nil {
		t.Fatal(err)
	}
	if ok, err := h.svc.TemplateFileUpload(ctx, beta.ID, res.TemplateID, hash); err != nil || !ok {
		t.Errorf("uploaded files present: %v %v", ok, err)
	}

	spec := TemplateSpec{FromTemplate: "base", Steps: []TemplateStep{{Type: "RUN", Args: []string{"true"}}}}
	if err := h.svc.StartTemplateBuild(ctx, defTeam, "app", res.BuildID, spec, "", ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("another team starts the build: %v, want not found", err)
	}
	if err := h.svc.StartTemplateBuild(ctx, beta.ID, "app", res.BuildID, spec, "", "true"); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("a ready command without a start command: %v", err)
	}
	if err := h.svc.StartTemplateBuild(ctx, beta.ID, "app", res.BuildID, spec, "sleep 1000", "true"); err != nil {
		t.Fatal(err)
	}
	got := fb.started[len(fb.started)-1]
	if got.Spec == nil || got.TeamID != beta.ID || got.Name != res.TemplateID || got.StartCmd != "sleep 1000" || got.FromTemplate == nil {
		t.Errorf("started %+v", got)
	}
	if err := h.svc.StartTemplateBuild(ctx, beta.ID, "app", res.BuildID, spec, "", ""); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("a second start: %v, want invalid", err)
	}
	fb.finish(t, res.BuildID, BuildReady)

	// Tags: a sandbox of name:tag gets the tagged build's details.
	if _, _, err := h.svc.AssignTemplateTags(ctx, beta.ID, "app", []string{"prod"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.TemplateByAlias(ctx, beta.ID, "app:prod"); err != nil {
		t.Errorf("alias app:prod: %v", err)
	}
	if _, err := h.svc.TemplateByAlias(ctx, beta.ID, "app:nope"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "tag 'nope' does not exist") {
		t.Errorf("alias app:nope: %v", err)
	}
	if _, err := h.svc.TemplateByAlias(ctx, defTeam, "app"); !errors.Is(err, ErrNotFound) {
		t.Errorf("another team's private template by alias: %v, want not found", err)
	}
	fb.tags[res.TemplateID]["old"] = "11111111-1111-4111-8111-111111111111"
	if _, err := h.svc.Create(ctx, beta.ID, CreateRequest{TemplateID: "app:old"}); err != nil {
		t.Fatal(err)
	}
	if last := fb.detailsFor[len(fb.detailsFor)-1]; last != "11111111-1111-4111-8111-111111111111" {
		t.Errorf("a create of app:old asked for the details of build %q", last)
	}
	if _, err := h.svc.Create(ctx, beta.ID, CreateRequest{TemplateID: "app:none"}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("a create of an unknown tag: %v, want invalid", err)
	}
	if err := h.svc.RemoveTemplateTags(ctx, beta.ID, "app", []string{DefaultTag}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("removing the default tag: %v", err)
	}
	if err := h.svc.RemoveTemplateTags(ctx, beta.ID, "app:prod", []string{"prod"}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("removing with a tagged name: %v", err)
	}
	if _, err := h.svc.TemplateTags(ctx, defTeam, res.TemplateID); !errors.Is(err, ErrNotFound) {
		t.Errorf("another team's tags: %v, want not found", err)
	}
}
