package controlplane

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/controlplane/controlplanetest"
	"lelantos.dev/lelantos/internal/store"
)

// TestSnapshots: a snapshot is a template of the team: unnamed ones are named by
// their ID, named ones by "<slug>/<name>"; a name taken again gets a new build;
// sandboxes start from a snapshot's newest build of a tag with its sizes; the
// source runs on; deleting it (by any of its IDs) removes every build from the
// node, once no sandbox from it runs.
func TestSnapshots(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	src := h.create(t, CreateRequest{TemplateID: "big", Timeout: time.Hour})

	unnamed, err := h.svc.CreateSnapshot(ctx, defTeam, src.ID, SnapshotRequest{})
	if err != nil {
		t.Fatalf("unnamed snapshot: %v", err)
	}
	tplID, tag, ok := strings.Cut(unnamed.SnapshotID, ":")
	if !ok || tag != "default" || len(unnamed.Names) != 0 {
		t.Fatalf("unnamed snapshot %+v: want <templateID>:default and no names", unnamed)
	}
	named, err := h.svc.CreateSnapshot(ctx, defTeam, src.ID, SnapshotRequest{Name: " My-Snap "})
	if err != nil {
		t.Fatalf("named snapshot: %v", err)
	}
	if named.SnapshotID != "default/my-snap:default" || !slices.Equal(named.Names, []string{"default/my-snap"}) {
		t.Fatalf("named snapshot %+v", named)
	}
	v2, err := h.svc.CreateSnapshot(ctx, defTeam, src.ID, SnapshotRequest{Name: "default/my-snap:v2"})
	if err != nil || v2.SnapshotID != "default/my-snap:v2" {
		t.Fatalf("second build of a name: %+v, %v", v2, err)
	}
	if st := h.stored(t, src.ID); st.State != StateRunning || !st.EndAt.Equal(src.EndAt) {
		t.Errorf("source after its snapshots: %+v", st)
	}
	if n := len(h.node.Snapshots()); n != 3 {
		t.Errorf("the node holds %d snapshots, want 3", n)
	}

	// Sandboxes from a snapshot: its template, sizes and newest build of the tag.
	for _, ref := range []string{unnamed.SnapshotID, tplID, named.SnapshotID, "my-snap", v2.SnapshotID} {
		sb, err := h.svc.Create(ctx, defTeam, CreateRequest{TemplateID: ref})
		if err != nil {
			t.Fatalf("create from %q: %v", ref, err)
		}
		sp := h.node.SpecOf(sb.ID)
		if sp.GetSnapshotId() == "" || sp.GetStartCmd() != "" || sp.GetCpuCount() != 4 || sp.GetMemoryMb() != 1024 ||
			sp.GetTemplateRootfs() != "/var/lib/lelantos/big" {
			t.Errorf("create from %q: node spec %+v", ref, sp)
		}
		if sb.CPUCount != 4 || sb.TemplateID == "big" {
			t.Errorf("create from %q: sandbox %+v, want the snapshot's template and sizes", ref, sb)
		}
		if err := h.svc.Kill(ctx, defTeam, sb.ID); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.svc.Create(ctx, defTeam, CreateRequest{TemplateID: "my-snap:v9"}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("create from a missing tag: %v, want ErrInvalidArgument", err)
	}

	// A sandbox from the snapshot keeps it from being deleted.
	user, err := h.svc.Create(ctx, defTeam, CreateRequest{TemplateID: "my-snap"})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.svc.DeleteTemplate(ctx, defTeam, "default/my-snap:v2"); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("delete a snapshot in use: %v, want ErrInvalidArgument", err)
	}
	if err := h.svc.Kill(ctx, defTeam, user.ID); err != nil {
		t.Fatal(err)
	}
	if err := h.svc.DeleteTemplate(ctx, defTeam, "default/my-snap:v2"); err != nil {
		t.Fatalf("delete a snapshot by a tagged name: %v", err)
	}
	if n := len(h.node.Snapshots()); n != 1 {
		t.Errorf("the node holds %d snapshots after deleting a two-build one, want 1", n)
	}
	if err := h.svc.DeleteTemplate(ctx, defTeam, unnamed.SnapshotID); err != nil {
		t.Fatalf("delete the unnamed snapshot by its ID: %v", err)
	}
	if n := len(h.node.Snapshots()); n != 0 {
		t.Errorf("the node still holds %d snapshots", n)
	}
	if _, err := h.svc.Create(ctx, defTeam, CreateRequest{TemplateID: named.SnapshotID}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("create from a deleted snapshot: %v, want ErrInvalidArgument", err)
	}
}

// TestSnapshotRefusals: what cannot be snapshotted, and names that are refused.
func TestSnapshotRefusals(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	running := h.create(t, CreateRequest{})
	paused := h.create(t, CreateRequest{})
	if err := h.svc.Pause(ctx, defTeam, paused.ID); err != nil {
		t.Fatal(err)
	}
	b := newTeam(t, h, "beta", store.QuotaSettings{})
	tests := []struct {
		name, team, id, snap string
		want                 error
		mention              string
	}{
		{"paused", defTeam, paused.ID, "", ErrNotFound, "doesn't exist or you don't have access"},
		{"unknown", defTeam, "nosuchsandbox", "", ErrNotFound, "doesn't exist"},
		{"another team's", b.ID, running.ID, "", ErrNotFound, "doesn't exist"},
		{"another namespace", defTeam, running.ID, "beta/snap", ErrInvalidArgument, "Invalid name"},
		{"bad characters", defTeam, running.ID, "my snap", ErrInvalidArgument, "Invalid name"},
		{"bad tag", defTeam, running.ID, "snap:v/2", ErrInvalidArgument, "Invalid name"},
		{"a UUID", defTeam, running.ID, "0b1c9e3e-2d5a-4c8e-9a1f-5b7c6d8e9f00", ErrInvalidArgument, "UUID"},
		{"a template's name", defTeam, running.ID, "big", ErrInvalidArgument, "not a snapshot"},
		{"a template's alias", defTeam, running.ID, "large", ErrInvalidArgument, "not a snapshot"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := h.svc.CreateSnapshot(ctx, tt.team, tt.id, SnapshotRequest{Name: tt.snap})
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.mention) || info != nil {
				t.Fatalf("got %+v, %v; want %v mentioning %q", info, err, tt.want, tt.mention)
			}
			if n := len(h.node.Snapshots()); n != 0 {
				t.Errorf("a refused snapshot left %d on the node", n)
			}
		})
	}
	if n := h.node.Calls(controlplanetest.OpSnapshot); n != 0 {
		t.Errorf("%d snapshot calls reached the node", n)
	}
}

// TestListSnapshots: newest first, with E2B's filters and paging, and another
// team's snapshots are neither listed nor usable nor deletable.
func TestListSnapshots(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	a := h.create(t, CreateRequest{})
	b := h.create(t, CreateRequest{})
	take := func(id, name string) string {
		t.Helper()
		h.clock.Advance(time.Second)
		info, err := h.svc.CreateSnapshot(ctx, defTeam, id, SnapshotRequest{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		return info.SnapshotID
	}
	s1 := take(a.ID, "")
	s2 := take(b.ID, "alpha")
	s3 := take(a.ID, "alpha:v2")
	s4 := take(a.ID, "beta")
	list := func(req SnapshotListRequest) []string {
		t.Helper()
		infos, next, err := h.svc.ListSnapshots(ctx, defTeam, req)
		if err != nil || next != "" {
			t.Fatalf("list %+v: %v, next %q", req, err, next)
		}
		out := []string{}
		for _, i := range infos {
			out = append(out, i.SnapshotID)
		}
		return out
	}
	tests := []struct {
		name string
		req  SnapshotListRequest
		want []string
	}{
		{"all", SnapshotListRequest{}, []string{s4, s3, s1}},
		{"of a sandbox", SnapshotListRequest{SandboxID: b.ID}, []string{s2}},
		{"by name", SnapshotListRequest{Name: "alpha"}, []string{s3}},
		{"by name and tag", SnapshotListRequest{Name: "alpha:default"}, []string{s2}},
		{"by full name", SnapshotListRequest{Name: "default/alpha:v2"}, []string{s3}},
		{"by ID", SnapshotListRequest{Name: s1}, []string{s1}},
		{"unknown name", SnapshotListRequest{Name: "gamma"}, []string{}},
		{"a template that is no snapshot", SnapshotListRequest{Name: "big"}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := list(tt.req); !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
	var paged []string
	req := SnapshotListRequest{Limit: 1}
	for range 5 {
		infos, next, err := h.svc.ListSnapshots(ctx, defTeam, req)
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range infos {
			paged = append(paged, i.SnapshotID)
		}
		if next == "" {
			break
		}
		req.Cursor = next
	}
	if want := []string{s4, s3, s1}; !slices.Equal(paged, want) {
		t.Errorf("pages of one: %v, want %v", paged, want)
	}
	for _, bad := range []SnapshotListRequest{{Cursor: "not-a-token"}, {SandboxID: "Bad ID"}, {Limit: 101}} {
		if _, _, err := h.svc.ListSnapshots(ctx, defTeam, bad); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("list %+v: %v, want ErrInvalidArgument", bad, err)
		}
	}

	other := newTeam(t, h, "other", store.QuotaSettings{})
	if infos, _, err := h.svc.ListSnapshots(ctx, other.ID, SnapshotListRequest{}); err != nil || len(infos) != 0 {
		t.Errorf("another team lists %v, %v", infos, err)
	}
	if infos, _, _ := h.svc.ListSnapshots(ctx, other.ID, SnapshotListRequest{Name: s1}); len(infos) != 0 {
		t.Errorf("another team finds %s by ID", s1)
	}
	if _, err := h.svc.Create(ctx, other.ID, CreateRequest{TemplateID: s1}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("another team creates from %s: %v", s1, err)
	}
	if err := h.svc.DeleteTemplate(ctx, other.ID, s1); !errors.Is(err, ErrNotFound) {
		t.Errorf("another team deletes %s: %v, want ErrNotFound", s1, err)
	}
	if got := list(SnapshotListRequest{}); len(got) != 3 {
		t.Errorf("after another team's attempts: %v", got)
	}
}
