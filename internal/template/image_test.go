package template_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/store"
	"lelantos.dev/lelantos/internal/template"
)

// newStoreBuilder is a builder without runtime, network or engine: enough for
// Dockerfiles without RUN or a start command.
func newStoreBuilder(t *testing.T) (*template.Builder, string) { return newStoreBuilderWith(t, nil) }

// newStoreBuilderWith is newStoreBuilder with options edit changes.
func newStoreBuilderWith(t *testing.T, edit func(*template.BuilderOptions)) (*template.Builder, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (file owners)")
	}
	dir := t.TempDir()
	db, err := store.Open(context.Background(), filepath.Join(dir, "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	opts := template.BuilderOptions{DataDir: dir, Store: db}
	if edit != nil {
		edit(&opts)
	}
	b, err := template.NewBuilder(opts)
	if err != nil {
		t.Fatal(err)
	}
	return b, dir
}

// tarEntry is one entry of a test archive.
type tarEntry struct {
	name, body, link string
	typ              byte
	mode             int64
	uid              int
	major, minor     int64 // of a device node
}

func makeTar(t *testing.T, gz bool, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	var out io.Writer = &buf
	var zw *gzip.Writer
	if gz {
		zw = gzip.NewWriter(&buf)
		out = zw
	}
	tw := tar.NewWriter(out)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Uid: e.uid, Gid: e.uid,
			Devmajor: e.major, Devminor: e.minor, ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// writeBlob stores data in an OCI layout and returns its digest.
func writeBlob(t *testing.T, layout string, data []byte) string {
	t.Helper()
	sum := sha256.Sum256(data)
	hexd := hex.EncodeToString(sum[:])
	p := filepath.Join(layout, "blobs", "sha256", hexd)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return "sha256:" + hexd
}

// writeLayout writes an OCI image layout with two layers: the second deletes a file
// of the first (whiteout), empties a directory (opaque whiteout) and tries to escape
// the tree.
func writeLayout(t *testing.T, layout string) {
	t.Helper()
	l1 := makeTar(t, true,
		tarEntry{name: "etc/", typ: tar.TypeDir, mode: 0o755},
		tarEntry{name: "etc/os-release", body: "ID=tiny\n"},
		tarEntry{name: "etc/passwd", body: "root:x:0:0:root:/root:/bin/sh\napp:x:1234:1234::/home/app:/bin/sh\n"},
		tarEntry{name: "data/", typ: tar.TypeDir, mode: 0o755},
		tarEntry{name: "data/keep.txt", body: "keep\n", uid: 1234},
		tarEntry{name: "data/gone.txt", body: "gone\n"},
		tarEntry{name: "data/link", typ: tar.TypeLink, link: "data/keep.txt"},
		tarEntry{name: "data/sym", typ: tar.TypeSymlink, link: "/etc/os-release"},
		tarEntry{name: "opq/", typ: tar.TypeDir, mode: 0o755},
		tarEntry{name: "opq/old.txt", body: "old\n"},
		tarEntry{name: "bin/", typ: tar.TypeDir, mode: 0o755},
		tarEntry{name: "bin/tool", body: "#!/bin/true\n", mode: 0o4755},
	)
	l2 := makeTar(t, false,
		tarEntry{name: "data/.wh.gone.txt"},
		tarEntry{name: "opq/.wh..wh..opq"},
		tarEntry{name: "opq/new.txt", body: "new\n"},
		tarEntry{name: "../../escape.txt", body: "contained\n"},
		tarEntry{name: "data/sym/../../outside.txt", body: "also contained\n"},
	)
	cfg, _ := json.Marshal(map[string]any{"architecture": "amd64", "os": "linux", "config": map[string]any{
		"Env": []string{"PATH=/bin", "FOO=bar"}, "WorkingDir": "/data", "User": "app", "Cmd": []string{"/bin/tool"},
	}})
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": writeBlob(t, layout, cfg), "size": len(cfg)},
		"layers": []map[string]any{
			{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": writeBlob(t, layout, l1), "size": len(l1)},
			{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": writeBlob(t, layout, l2), "size": len(l2)},
		},
	})
	index, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []map[string]any{{
		"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": writeBlob(t, layout, manifest), "size": len(manifest),
		"platform": map[string]string{"architecture": "amd64", "os": "linux"},
	}}})
	if err := os.WriteFile(filepath.Join(layout, "index.json"), index, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(layout, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestFromImageAndAdd builds FROM an OCI layout and an OCI archive, with COPY and
// ADD of a local archive, and checks whiteouts, containment, modes and metadata.
func TestFromImageAndAdd(t *testing.T) {
	b, _ := newStoreBuilder(t)
	ctx := context.Background()
	bctx := writeContext(t, map[string]string{"extra.txt": "extra\n"})
	writeLayout(t, filepath.Join(bctx, "image"))
	archive := makeTar(t, true, tarEntry{name: "pkg/", typ: tar.TypeDir, mode: 0o755}, tarEntry{name: "pkg/readme", body: "from the archive\n", uid: 7})
	if err := os.WriteFile(filepath.Join(bctx, "pkg.tar.gz"), archive, 0o644); err != nil {
		t.Fatal(err)
	}
	// The same layout as an archive (as skopeo's oci-archive: writes it).
	layoutTar := tarDir(t, filepath.Join(bctx, "image"))
	if err := os.WriteFile(filepath.Join(bctx, "image.tar"), layoutTar, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, from := range []string{"./image", "oci-archive:image.tar"} {
		t.Run(from, func(t *testing.T) {
			df := "FROM " + from + "\nENV BAR=baz\nCOPY extra.txt .\nADD pkg.tar.gz /opt/\nADD --chown=app extra.txt /opt/copied.txt\n"
			var log syncBuffer
			res, err := b.Build(ctx, template.BuildRequest{Name: "tiny", Dockerfile: df, ContextDir: bctx}, &log)
			if err != nil {
				t.Fatalf("build: %v\n%s", err, log.String())
			}
			root := res.Metadata.Rootfs
			for rel, want := range map[string]string{
				"etc/os-release": "ID=tiny\n", "data/keep.txt": "keep\n", "data/link": "keep\n", "opq/new.txt": "new\n",
				"escape.txt": "contained\n", "outside.txt": "also contained\n", "data/extra.txt": "extra\n",
				"opt/pkg/readme": "from the archive\n", "opt/copied.txt": "extra\n",
			} {
				if got, err := os.ReadFile(filepath.Join(root, rel)); err != nil || string(got) != want {
					t.Errorf("%s: %q, %v; want %q", rel, got, err, want)
				}
			}
			for _, gone := range []string{"data/gone.txt", "opq/old.txt"} {
				if _, err := os.Lstat(filepath.Join(root, gone)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s survived its whiteout: %v", gone, err)
				}
			}
			if l, _ := os.Readlink(filepath.Join(root, "data/sym")); l != "/etc/os-release" {
				t.Errorf("data/sym -> %q", l)
			}
			if fi, err := os.Stat(filepath.Join(root, "bin/tool")); err != nil || fi.Mode()&os.ModeSetuid == 0 {
				t.Errorf("bin/tool lost its setuid bit: %v %v", fi, err)
			}
			checkFile(t, root, "data/keep.txt", 0o644, 1234, 1234)
			checkFile(t, root, "opt/pkg/readme", 0o644, 7, 7)
			checkFile(t, root, "opt/copied.txt", 0o644, 1234, 1234)
			m := res.Metadata
			if m.Env["FOO"] != "bar" || m.Env["BAR"] != "baz" || m.Env["PATH"] != "/bin" || m.DefaultWorkdir != "/data" ||
				m.DefaultUser != "app" || strings.Join(m.Cmd, " ") != "/bin/tool" {
				t.Errorf("metadata %+v", m)
			}
			// Again: the image is not unpacked twice.
			var log2 syncBuffer
			res2, err := b.Build(ctx, template.BuildRequest{Name: "tiny", Dockerfile: df, ContextDir: bctx}, &log2)
			if err != nil || res2.Ran != 0 || res2.CacheHits != 4 {
				t.Errorf("rebuild: %+v %v\n%s", res2, err, log2.String())
			}
		})
	}
	t.Run("absolute path outside the image directories", func(t *testing.T) {
		_, err := b.Build(ctx, template.BuildRequest{Name: "tiny2", Dockerfile: "FROM " + filepath.Join(bctx, "image") + "\n"}, nil)
		if !errors.Is(err, template.ErrInvalid) || !strings.Contains(err.Error(), "image directories") {
			t.Errorf("got %v", err)
		}
	})
}

// tarDir archives a directory tree (files and directories only).
func tarDir(t *testing.T, dir string) []byte {
	t.Helper()
	var entries []tarEntry
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if fi.IsDir() {
			entries = append(entries, tarEntry{name: rel + "/", typ: tar.TypeDir, mode: 0o755})
			return nil
		}
		body, err := os.ReadFile(p)
		entries = append(entries, tarEntry{name: rel, body: string(body)})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return makeTar(t, false, entries...)
}

// TestStartAndStatus runs a build in the background and follows it by its id.
func TestStartAndStatus(t *testing.T) {
	b, _ := newStoreBuilder(t)
	bctx := writeContext(t, map[string]string{"hello.txt": "hi\n"})
	id, err := b.Start(template.BuildRequest{Name: "bg", Dockerfile: "FROM scratch\nCOPY hello.txt /\nUSER 1000:1000\n", ContextDir: bctx})
	if err != nil {
		t.Fatal(err)
	}
	var rec *template.BuildRecord
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if rec, err = b.BuildStatus(id); err != nil {
			t.Fatal(err)
		}
		if rec.Status != template.BuildBuilding {
			break
		}
	}
	if rec.Status != template.BuildReady || rec.TemplateID != "bg" || rec.FinishedAt == nil {
		t.Fatalf("record %+v", rec)
	}
	logs, err := b.BuildLogs(id, 2, 2)
	if err != nil || len(logs) != 2 || logs[0].Message != "Step 2/3 : COPY hello.txt /" {
		t.Fatalf("logs from offset 2: %+v %v", logs, err)
	}
	info, err := b.Get(context.Background(), "bg")
	if err != nil || info.Metadata == nil || info.Metadata.DefaultUser != "1000" || info.Template.BuildID != id {
		t.Fatalf("get: %+v %v", info, err)
	}
	if _, err := b.BuildStatus("5e6f0d4e-0000-4000-8000-000000000000"); !errors.Is(err, template.ErrNotFound) {
		t.Errorf("unknown build: %v", err)
	}
	if _, err := b.Start(template.BuildRequest{Name: "bg", BuildID: id, Dockerfile: "FROM scratch\n"}); !errors.Is(err, template.ErrInvalid) {
		t.Errorf("reused build id: %v", err)
	}
}
