package image_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"lelantos.dev/lelantos/internal/saferoot"
	"lelantos.dev/lelantos/internal/template/image"
)

func tarOf(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func put(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func blob(t *testing.T, dir string, v any) string {
	t.Helper()
	data, ok := v.([]byte)
	if !ok {
		data, _ = json.Marshal(v)
	}
	sum := sha256.Sum256(data)
	d := hex.EncodeToString(sum[:])
	put(t, dir, "blobs/sha256/"+d, data)
	return "sha256:" + d
}

// oci writes a layout with the layers; edit may change the manifest first.
func oci(t *testing.T, dir string, edit func(m map[string]any), layers ...[]byte) {
	t.Helper()
	cfg := blob(t, dir, map[string]any{"config": map[string]any{"Env": []string{"A=1"}, "User": "app", "ExposedPorts": map[string]any{"80/tcp": struct{}{}}}})
	var ls []map[string]any
	for _, l := range layers {
		ls = append(ls, map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": blob(t, dir, l)})
	}
	m := map[string]any{"config": map[string]any{"digest": cfg}, "layers": ls}
	if edit != nil {
		edit(m)
	}
	md := blob(t, dir, m)
	inner := blob(t, dir, map[string]any{"manifests": []map[string]any{{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md}}})
	idx, _ := json.Marshal(map[string]any{"manifests": []map[string]any{{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": inner}}})
	put(t, dir, "index.json", idx)
	put(t, dir, "oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
}

// TestReadAndUnpack reads layouts of both formats and unpacks them, and refuses
// broken ones with an error naming the problem.
func TestReadAndUnpack(t *testing.T) {
	l1, l2 := tarOf(t, map[string]string{"a": "1"}), tarOf(t, map[string]string{"b": "22"})
	tests := []struct {
		name    string
		setup   func(t *testing.T, dir string)
		limits  saferoot.Limits
		readErr string
		packErr string
		want    map[string]string
	}{
		{name: "OCI layout through a nested index", setup: func(t *testing.T, dir string) { oci(t, dir, nil, l1, l2) },
			want: map[string]string{"a": "1", "b": "22"}},
		{name: "docker save directory", setup: func(t *testing.T, dir string) {
			put(t, dir, "cfg.json", []byte(`{"config":{"User":"app","Env":["A=1"],"ExposedPorts":{"80/tcp":{}}}}`))
			put(t, dir, "l1/layer.tar", l1)
			put(t, dir, "manifest.json", []byte(`[{"Config":"cfg.json","Layers":["l1/layer.tar"]}]`))
		}, want: map[string]string{"a": "1"}},
		{name: "neither", setup: func(t *testing.T, dir string) {}, readErr: "neither an OCI image layout"},
		{name: "bad layout version", setup: func(t *testing.T, dir string) {
			oci(t, dir, nil, l1)
			put(t, dir, "oci-layout", []byte(`{"imageLayoutVersion":"2.0.0"}`))
		}, readErr: "not 1.x"},
		{name: "a blob not matching its digest", setup: func(t *testing.T, dir string) {
			oci(t, dir, nil, l1)
			ents, _ := filepath.Glob(filepath.Join(dir, "blobs/sha256/*"))
			for _, e := range ents {
				if data, _ := os.ReadFile(e); bytes.Contains(data, []byte(`"layers"`)) {
					put(t, dir, "blobs/sha256/"+filepath.Base(e), append(data, ' '))
				}
			}
		}, readErr: "does not match its digest"},
		{name: "a zstd layer", setup: func(t *testing.T, dir string) {
			oci(t, dir, func(m map[string]any) {
				m["layers"].([]map[string]any)[0]["mediaType"] = "application/vnd.oci.image.layer.v1.tar+zstd"
			}, l1)
		}, readErr: "zstd-compressed"},
		{name: "a bad digest", setup: func(t *testing.T, dir string) {
			oci(t, dir, func(m map[string]any) { m["layers"].([]map[string]any)[0]["digest"] = "sha256:../../x" }, l1)
		}, readErr: "unsupported digest"},
		{name: "a layer changed after the manifest", setup: func(t *testing.T, dir string) {
			oci(t, dir, nil, l1)
			sum := sha256.Sum256(l1)
			put(t, dir, "blobs/sha256/"+hex.EncodeToString(sum[:]), tarOf(t, map[string]string{"a": "2"}))
		}, packErr: "does not match its digest"},
		{name: "a missing layer", setup: func(t *testing.T, dir string) {
			oci(t, dir, nil, l1)
			sum := sha256.Sum256(l1)
			_ = os.Remove(filepath.Join(dir, "blobs/sha256", hex.EncodeToString(sum[:])))
		}, packErr: "missing from the layout"},
		{name: "layers over the limit together", setup: func(t *testing.T, dir string) { oci(t, dir, nil, l1, l2) },
			limits: saferoot.Limits{Bytes: 2}, packErr: "layer 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(t, dir)
			layout, err := saferoot.Open(dir, saferoot.Beneath)
			if err != nil {
				t.Fatal(err)
			}
			defer layout.Close()
			img, err := image.Read(layout)
			if tc.readErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.readErr) {
					t.Fatalf("read: %v, want %q", err, tc.readErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if img.Config.User != "app" || img.Config.Env[0] != "A=1" || img.Config.ExposedPorts[0] != "80/tcp" || !strings.HasPrefix(img.Digest, "sha256:") {
				t.Errorf("image %+v", img)
			}
			treeDir := t.TempDir()
			tree, err := saferoot.Open(treeDir, saferoot.InRoot)
			if err != nil {
				t.Fatal(err)
			}
			defer tree.Close()
			_, err = img.Unpack(context.Background(), layout, tree, tc.limits)
			if tc.packErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.packErr) {
					t.Fatalf("unpack: %v, want %q", err, tc.packErr)
				}
				if tc.limits.Bytes != 0 && !errors.Is(err, saferoot.ErrTooLarge) {
					t.Errorf("unpack past the limits: %v, want ErrTooLarge", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for name, want := range tc.want {
				if data, err := os.ReadFile(filepath.Join(treeDir, name)); err != nil || string(data) != want {
					t.Errorf("%s = %q, %v; want %q", name, data, err, want)
				}
			}
		})
	}
}
