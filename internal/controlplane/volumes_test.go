package controlplane

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"lelantos.dev/lelantos/internal/store"
	"lelantos.dev/lelantos/internal/volume"
)

// volumeHarness is a harness whose Service keeps volumes as directories.
func volumeHarness(t *testing.T) (*harness, *volume.Dirs) {
	t.Helper()
	vols, err := volume.NewDirs(filepath.Join(t.TempDir(), "volumes"))
	if err != nil {
		t.Fatal(err)
	}
	h := newTunedHarness(t, func(c *Config) { c.Volumes = vols; c.VolumeTokenTTL = time.Hour })
	return h, vols
}

func TestVolumeCRUD(t *testing.T) {
	h, vols := volumeHarness(t)
	ctx := context.Background()
	v, err := h.svc.CreateVolume(ctx, defTeam, "data", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !validVolumeID(v.ID) || v.SizeMB != 1024 || v.Token == "" {
		t.Errorf("created %+v", v)
	}
	for _, tt := range []struct {
		name string
		size int
		kind error
		msg  string
	}{
		{"data", 0, ErrInvalidArgument, "Volume with name 'data' already exists"},
		{"bad name", 0, ErrInvalidArgument, "name: invalid volume name"},
		{"tiny", 8, ErrInvalidArgument, "sizeMB: must be between"},
		{"huge", 1 << 20, ErrInvalidArgument, "sizeMB: must be between"},
	} {
		_, err := h.svc.CreateVolume(ctx, defTeam, tt.name, tt.size)
		if !errors.Is(err, tt.kind) || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("create %q: %v, want %v containing %q", tt.name, err, tt.kind, tt.msg)
		}
	}
	if ids, _ := vols.List(ctx); len(ids) != 1 {
		t.Errorf("the refused creates left content: %v", ids)
	}
	got, err := h.svc.GetVolume(ctx, defTeam, v.ID)
	if err != nil || got.Name != "data" || got.Token == "" {
		t.Fatalf("get: %+v, %v", got, err)
	}
	list, err := h.svc.ListVolumes(ctx, defTeam)
	if err != nil || len(list) != 1 || list[0].ID != v.ID || list[0].Token != "" {
		t.Errorf("list: %+v, %v", list, err)
	}
	for name, err := range map[string]error{
		"get by another team":    func() error { _, err := h.svc.GetVolume(ctx, "other-team", v.ID); return err }(),
		"delete by another team": h.svc.DeleteVolume(ctx, "other-team", v.ID),
		"get unknown": func() error {
			_, err := h.svc.GetVolume(ctx, defTeam, "0f6b2b44-5d0c-4c35-9f6e-3b1e3c7a9d10")
			return err
		}(),
	} {
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", name, err)
		}
	}
	if _, err := h.svc.GetVolume(ctx, defTeam, "../../etc"); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("get a malformed ID: %v", err)
	}
	if err := h.svc.DeleteVolume(ctx, defTeam, v.ID); err != nil {
		t.Fatal(err)
	}
	if ids, _ := vols.List(ctx); len(ids) != 0 {
		t.Errorf("content left after delete: %v", ids)
	}
}

// forge returns a token for claims signed with key (nil: unsigned, alg none).
func forge(t *testing.T, claims jwt.Claims, key []byte) string {
	t.Helper()
	if key == nil {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims).SignedString(jwt.UnsafeAllowNoneSignatureType)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestVolumeTokens attacks the content API's tokens: each forged, stolen-from-another
// volume, expired or tampered token must be refused, and the real one accepted.
func TestVolumeTokens(t *testing.T) {
	h, _ := volumeHarness(t)
	ctx := context.Background()
	a, err := h.svc.CreateVolume(ctx, defTeam, "a", 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.svc.CreateVolume(ctx, defTeam, "b", 0)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := h.svc.OpenVolume(ctx, a.ID, a.Token)
	if err != nil {
		t.Fatalf("the real token: %v", err)
	}
	tr.Close()
	claims := func(vol, team string, exp time.Time) volumeClaims {
		return volumeClaims{VolumeID: vol, RegisteredClaims: jwt.RegisteredClaims{Issuer: volumeTokenIssuer,
			Subject: team, Audience: jwt.ClaimStrings{volumeTokenAudience}, ExpiresAt: jwt.NewNumericDate(exp)}}
	}
	later := h.clock.Now().Add(time.Hour)
	parts := strings.Split(a.Token, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	swapped := strings.Replace(string(payload), a.ID, b.ID, 1)
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(swapped)) + "." + parts[2]
	attacks := map[string]string{
		"empty":                         "",
		"garbage":                       "not-a-token",
		"another volume's token":        b.Token,
		"unsigned (alg none)":           forge(t, claims(a.ID, defTeam, later), nil),
		"signed with a guessed key":     forge(t, claims(a.ID, defTeam, later), []byte("secret")),
		"the payload of another volume": tampered,
	}
	for name, tok := range attacks {
		if _, err := h.svc.OpenVolume(ctx, a.ID, tok); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%s: %v, want ErrUnauthenticated", name, err)
		}
	}
	if _, err := h.svc.OpenVolume(ctx, b.ID, tampered); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("tampered token on the volume it names: %v", err)
	}
	// A token is good for VolumeTokenTTL.
	h.clock.Advance(time.Hour + time.Minute)
	if _, err := h.svc.OpenVolume(ctx, a.ID, a.Token); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("expired token: %v", err)
	}
	fresh, err := h.svc.GetVolume(ctx, defTeam, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	tr, err = h.svc.OpenVolume(ctx, a.ID, fresh.Token)
	if err != nil {
		t.Fatalf("a fresh token: %v", err)
	}
	tr.Close()
	// Deleting the volume voids its tokens.
	if err := h.svc.DeleteVolume(ctx, defTeam, a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.OpenVolume(ctx, a.ID, fresh.Token); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("token of a deleted volume: %v", err)
	}
}

func TestCreateWithVolumeMounts(t *testing.T) {
	h, _ := volumeHarness(t)
	ctx := context.Background()
	v, err := h.svc.CreateVolume(ctx, defTeam, "data", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.CreateVolume(ctx, defTeam, "cache", 0); err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name   string
		mounts []VolumeMount
		want   string
	}{
		{"unknown volume", []VolumeMount{{"nope", "/a"}}, "volume mount #0: volume 'nope' not found"},
		{"relative path", []VolumeMount{{"data", "mnt"}}, "volume mount #0: path must be absolute"},
		{"unclean path", []VolumeMount{{"data", "/mnt/../etc"}}, "must be clean"},
		{"trailing slash", []VolumeMount{{"data", "/mnt/"}}, "must be clean"},
		{"the root", []VolumeMount{{"data", "/"}}, "must not be the root"},
		{"over /proc", []VolumeMount{{"data", "/proc"}}, "is reserved"},
		{"under /sys", []VolumeMount{{"data", "/sys/fs/x"}}, "is reserved"},
		{"over the daemon", []VolumeMount{{"data", "/lelantos"}}, "is reserved"},
		{"same path twice", []VolumeMount{{"data", "/m"}, {"cache", "/m"}}, "volume mount #1: path '/m' is already used"},
		{"nested", []VolumeMount{{"data", "/m/inner"}, {"cache", "/m"}}, "are inside one another"},
		{"empty path", []VolumeMount{{"data", ""}}, "path is required"},
		{"too many", make([]VolumeMount, MaxVolumeMounts+1), "at most 16 volumes"},
	}
	for _, tt := range bad {
		_, err := h.svc.Create(ctx, defTeam, CreateRequest{VolumeMounts: tt.mounts})
		if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want a 400 containing %q", tt.name, err, tt.want)
		}
	}
	if n := h.node.Calls("create"); n != 0 {
		t.Errorf("refused creates reached the node %d times", n)
	}
	sb := h.create(t, CreateRequest{VolumeMounts: []VolumeMount{{"data", "/mnt/data"}, {"data", "/srv/again"}}})
	got, err := h.svc.Get(ctx, defTeam, sb.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.VolumeMount{{VolumeID: v.ID, Name: "data", Path: "/mnt/data"}, {VolumeID: v.ID, Name: "data", Path: "/srv/again"}}
	if len(got.VolumeMounts) != 2 || got.VolumeMounts[0] != want[0] || got.VolumeMounts[1] != want[1] {
		t.Errorf("stored mounts %+v, want %+v", got.VolumeMounts, want)
	}
	// Mounted by a live sandbox, paused or not, a volume stays.
	if err := h.svc.DeleteVolume(ctx, defTeam, v.ID); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), sb.ID) {
		t.Errorf("delete a mounted volume: %v", err)
	}
	if err := h.svc.Pause(ctx, defTeam, sb.ID); err != nil {
		t.Fatal(err)
	}
	if err := h.svc.DeleteVolume(ctx, defTeam, v.ID); !errors.Is(err, ErrConflict) {
		t.Errorf("delete a paused sandbox's volume: %v", err)
	}
	if err := h.svc.Kill(ctx, defTeam, sb.ID); err != nil {
		t.Fatal(err)
	}
	if err := h.svc.DeleteVolume(ctx, defTeam, v.ID); err != nil {
		t.Errorf("delete after the kill: %v", err)
	}
	if _, err := h.svc.Create(ctx, defTeam, CreateRequest{VolumeMounts: []VolumeMount{{"data", "/mnt"}}}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("mount a deleted volume: %v", err)
	}
}

// TestCreateMountsOtherTeamsVolume checks that a name resolves in the caller's team
// only: another team's volume of that name is as absent as an unknown one.
func TestCreateMountsOtherTeamsVolume(t *testing.T) {
	h, _ := volumeHarness(t)
	ctx := context.Background()
	other, err := CreateTeam(ctx, h.db, "other", "Other", store.QuotaSettings{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.CreateVolume(ctx, other.ID, "secret", 0); err != nil {
		t.Fatal(err)
	}
	_, err = h.svc.Create(ctx, defTeam, CreateRequest{VolumeMounts: []VolumeMount{{"secret", "/s"}}})
	if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "volume 'secret' not found") {
		t.Errorf("mount another team's volume: %v", err)
	}
}

func TestReconcileVolumes(t *testing.T) {
	h, vols := volumeHarness(t)
	ctx := context.Background()
	kept, err := h.svc.CreateVolume(ctx, defTeam, "kept", 0)
	if err != nil {
		t.Fatal(err)
	}
	lost, err := h.svc.CreateVolume(ctx, defTeam, "lost", 0)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := h.svc.OpenVolume(ctx, kept.ID, kept.Token)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Write("/f", strings.NewReader("keep me"), volume.Attrs{}, false); err != nil {
		t.Fatal(err)
	}
	tr.Close()
	const orphan = "0f6b2b44-5d0c-4c35-9f6e-3b1e3c7a9d10"
	if err := vols.Create(ctx, orphan, 16); err != nil {
		t.Fatal(err)
	}
	dir, _ := vols.Attach(ctx, lost.ID)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := h.svc.ReconcileVolumes(ctx); err != nil {
		t.Fatal(err)
	}
	ids, _ := vols.List(ctx)
	if len(ids) != 2 || !strings.Contains(strings.Join(ids, " "), kept.ID) || !strings.Contains(strings.Join(ids, " "), lost.ID) {
		t.Errorf("after reconcile: %v, want %s and %s", ids, kept.ID, lost.ID)
	}
	tr, err = h.svc.OpenVolume(ctx, kept.ID, kept.Token)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if e, err := tr.Stat("/f"); err != nil || e.Size != 7 {
		t.Errorf("the kept volume's file: %+v, %v", e, err)
	}
}
