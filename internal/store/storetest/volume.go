package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"lelantos.dev/lelantos/internal/store"
)

// newVolume is a volume of the default team.
func newVolume(id, name string) *store.Volume {
	return &store.Volume{ID: id, TeamID: store.DefaultTeamID, Name: name, SizeMB: 64, TokenKey: "k-" + id}
}

// otherTeam adds a second team and returns its ID.
func otherTeam(t *testing.T, db *store.DB) string {
	t.Helper()
	tm := &store.Team{ID: "11111111-1111-1111-1111-111111111111", Slug: "other", Name: "Other"}
	if err := db.InsertTeam(context.Background(), tm); err != nil {
		t.Fatal(err)
	}
	return tm.ID
}

func testInsertVolume(t *testing.T, e *env) {
	db := e.open(t)
	ctx := context.Background()
	other := otherTeam(t, db)
	e.setClock(db, base())
	tests := []struct {
		name string
		v    *store.Volume
		want error
	}{
		{"new", newVolume("v1", "data"), nil},
		{"second of the team", newVolume("v2", "Cache_2-x"), nil},
		{"name taken in the team", newVolume("v3", "data"), store.ErrExists},
		{"same name in another team", &store.Volume{ID: "v4", TeamID: other, Name: "data", SizeMB: 1, TokenKey: "k"}, nil},
		{"ID taken", newVolume("v1", "fresh"), store.ErrExists},
		{"bad name", newVolume("v5", "no.dots"), store.ErrInvalid},
		{"empty name", newVolume("v6", ""), store.ErrInvalid},
		{"no size", &store.Volume{ID: "v7", TeamID: store.DefaultTeamID, Name: "z", TokenKey: "k"}, store.ErrInvalid},
		{"no key", &store.Volume{ID: "v8", TeamID: store.DefaultTeamID, Name: "z", SizeMB: 1}, store.ErrInvalid},
		{"unknown team", &store.Volume{ID: "v9", TeamID: "nope", Name: "z", SizeMB: 1, TokenKey: "k"}, store.ErrNotFound},
	}
	for _, tt := range tests {
		wantErr(t, tt.name, db.InsertVolume(ctx, tt.v), tt.want)
	}
	got, err := db.GetVolume(ctx, "v1")
	if err != nil {
		t.Fatal(err)
	}
	if want := (store.Volume{ID: "v1", TeamID: store.DefaultTeamID, Name: "data", SizeMB: 64, TokenKey: "k-v1", CreatedAt: base()}); *got != want {
		t.Errorf("get: %+v, want %+v", *got, want)
	}
	_, err = db.GetVolume(ctx, "missing")
	wantErr(t, "get missing", err, store.ErrNotFound)
	names := func(vs []*store.Volume) (out []string) {
		for _, v := range vs {
			out = append(out, v.ID)
		}
		return out
	}
	mine, err := db.ListVolumes(ctx, store.DefaultTeamID)
	if err != nil || !slices.Equal(names(mine), []string{"v2", "v1"}) {
		t.Errorf("list of the team by name: %v, %v", names(mine), err)
	}
	all, err := db.ListVolumes(ctx, "")
	if err != nil || !slices.Equal(names(all), []string{"v1", "v2", "v4"}) {
		t.Errorf("list of all by ID: %v, %v", names(all), err)
	}
	none, err := db.ListVolumes(ctx, "no-such-team")
	if err != nil || none == nil || len(none) != 0 {
		t.Errorf("list of an unknown team: %v, %v (want an empty, non-nil list)", none, err)
	}
}

func testSandboxVolumeMounts(t *testing.T, e *env) {
	db := e.open(t)
	ctx := context.Background()
	other := otherTeam(t, db)
	for _, v := range []*store.Volume{newVolume("va", "alpha"), newVolume("vb", "beta"),
		{ID: "vx", TeamID: other, Name: "theirs", SizeMB: 1, TokenKey: "k"}} {
		if err := db.InsertVolume(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	s := newSandbox("sbmounts")
	s.VolumeMounts = []store.VolumeMount{{Name: "beta", Path: "/mnt/b"}, {Name: "alpha", Path: "/data"}, {VolumeID: "vb", Path: "/again"}}
	mustInsert(t, db, s)
	want := []store.VolumeMount{{VolumeID: "vb", Name: "beta", Path: "/mnt/b"}, {VolumeID: "va", Name: "alpha", Path: "/data"},
		{VolumeID: "vb", Name: "beta", Path: "/again"}}
	if !slices.Equal(s.VolumeMounts, want) {
		t.Errorf("after insert: %+v, want %+v", s.VolumeMounts, want)
	}
	got, err := db.GetSandbox(ctx, s.ID)
	if err != nil || !slices.Equal(got.VolumeMounts, want) {
		t.Errorf("get: %+v, %v", got.VolumeMounts, err)
	}
	plain := newSandbox("sbplain")
	mustInsert(t, db, plain)
	page, _, err := db.ListSandboxes(ctx, store.SandboxFilter{})
	if err != nil || len(page) != 2 {
		t.Fatalf("list: %d, %v", len(page), err)
	}
	for _, sb := range page {
		if sb.ID == s.ID && !slices.Equal(sb.VolumeMounts, want) || sb.ID == plain.ID && sb.VolumeMounts != nil {
			t.Errorf("listed %s with %+v", sb.ID, sb.VolumeMounts)
		}
	}
	// The mounts stay through an update.
	got.State = store.StatePaused
	if err := db.UpdateSandbox(ctx, got); err != nil {
		t.Fatal(err)
	}
	if again, _ := db.GetSandbox(ctx, s.ID); !slices.Equal(again.VolumeMounts, want) {
		t.Errorf("after an update: %+v", again.VolumeMounts)
	}

	for _, tt := range []struct {
		name   string
		mounts []store.VolumeMount
		index  int
	}{
		{"unknown name", []store.VolumeMount{{Name: "alpha", Path: "/a"}, {Name: "gamma", Path: "/g"}}, 1},
		{"another team's name", []store.VolumeMount{{Name: "theirs", Path: "/t"}}, 0},
		{"another team's ID", []store.VolumeMount{{VolumeID: "vx", Path: "/t"}}, 0},
	} {
		sb := newSandbox("sbbad")
		sb.VolumeMounts = tt.mounts
		err := db.InsertSandbox(ctx, sb)
		var me *store.MountError
		if !errors.As(err, &me) || me.Index != tt.index || !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: %v, want a MountError of mount #%d", tt.name, err, tt.index)
		}
		if _, err := db.GetSandbox(ctx, "sbbad"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: the refused sandbox was stored", tt.name)
		}
	}

	// A volume goes only once no sandbox that has not ended mounts it.
	err = db.DeleteVolume(ctx, "vb")
	var inUse *store.VolumeInUseError
	if !errors.As(err, &inUse) || !errors.Is(err, store.ErrInUse) || !slices.Equal(inUse.Sandboxes, []string{s.ID}) {
		t.Fatalf("delete a paused sandbox's volume: %v", err)
	}
	got, _ = db.GetSandbox(ctx, s.ID)
	got.State = store.StateKilled
	if err := db.UpdateSandbox(ctx, got); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "delete after the kill", db.DeleteVolume(ctx, "vb"), nil)
	wantErr(t, "delete again", db.DeleteVolume(ctx, "vb"), store.ErrNotFound)
	// A volume made again under the ID is not mounted by the old sandbox.
	if err := db.InsertVolume(ctx, newVolume("vb", "beta")); err != nil {
		t.Fatal(err)
	}
	if after, _ := db.GetSandbox(ctx, s.ID); len(after.VolumeMounts) != 1 || after.VolumeMounts[0].VolumeID != "va" {
		t.Errorf("the killed sandbox's other mount: %+v", after.VolumeMounts)
	}
	// A deleted sandbox's mounts go with it.
	if err := db.DeleteSandbox(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	again := newSandbox(s.ID)
	mustInsert(t, db, again)
	if got, _ := db.GetSandbox(ctx, s.ID); len(got.VolumeMounts) != 0 {
		t.Errorf("a sandbox made again under the ID has the old one's mounts: %+v", got.VolumeMounts)
	}
}

// testDeleteVolumeRacesMount runs sandbox creates that mount a volume against its
// deletion: either the volume goes and no create got it, or it stays mounted.
func testDeleteVolumeRacesMount(t *testing.T, e *env) {
	db := e.open(t)
	ctx := context.Background()
	for round := range 20 {
		id := fmt.Sprintf("race%d", round)
		if err := db.InsertVolume(ctx, newVolume(id, id)); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var insErr, delErr error
		wg.Add(2)
		go func() {
			defer wg.Done()
			sb := newSandbox(fmt.Sprintf("sbrace%d", round))
			sb.VolumeMounts = []store.VolumeMount{{Name: id, Path: "/v"}}
			insErr = db.InsertSandbox(ctx, sb)
		}()
		go func() { defer wg.Done(); delErr = db.DeleteVolume(ctx, id) }()
		wg.Wait()
		switch {
		case insErr == nil && errors.Is(delErr, store.ErrInUse):
		case delErr == nil && errors.Is(insErr, store.ErrNotFound):
		default:
			t.Fatalf("round %d: insert %v, delete %v", round, insErr, delErr)
		}
	}
}
