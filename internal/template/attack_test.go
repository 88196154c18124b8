package template_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"lelantos.dev/lelantos/internal/template"
)

// hostSecret is a root-only host file with a random marker, outside every tree the
// builder reads, watched with inotify so that a test can tell whether anything
// opened it.
type hostSecret struct {
	dir, path, marker string
	watch             int
}

func newHostSecret(t *testing.T) *hostSecret {
	t.Helper()
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	s := &hostSecret{dir: t.TempDir(), marker: "host-secret-" + hex.EncodeToString(b)}
	s.path = filepath.Join(s.dir, "host-secret.txt")
	if err := os.WriteFile(s.path, []byte(s.marker+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if _, err := unix.InotifyAddWatch(fd, s.path, unix.IN_OPEN|unix.IN_ACCESS|unix.IN_MODIFY|unix.IN_ATTRIB); err != nil {
		t.Fatal(err)
	}
	s.watch = fd
	return s
}

// watchFile watches another host file of the secret's.
func (s *hostSecret) watchFile(t *testing.T, p string) {
	t.Helper()
	if _, err := unix.InotifyAddWatch(s.watch, p, unix.IN_OPEN|unix.IN_ACCESS|unix.IN_MODIFY|unix.IN_ATTRIB); err != nil {
		t.Fatal(err)
	}
}

// touched reports whether anything opened, read or changed the secret since the
// last call.
func (s *hostSecret) touched() bool {
	buf := make([]byte, 4096)
	seen := false
	for {
		n, err := unix.Read(s.watch, buf)
		if n <= 0 || err != nil {
			return seen
		}
		seen = true
	}
}

// check fails t when the secret was touched or its marker is in any of texts or in
// a file below any of dirs.
func (s *hostSecret) check(t *testing.T, texts []string, dirs ...string) {
	t.Helper()
	if s.touched() {
		t.Errorf("the builder opened the host's secret file")
	}
	for _, x := range texts {
		if strings.Contains(x, s.marker) {
			t.Errorf("the host's secret is in the build's output:\n%s", x)
		}
	}
	for _, d := range dirs {
		_ = filepath.Walk(d, func(p string, fi os.FileInfo, err error) error {
			if err != nil || !fi.Mode().IsRegular() || fi.Size() > 64<<20 {
				return nil
			}
			if data, _ := os.ReadFile(p); bytes.Contains(data, []byte(s.marker)) {
				t.Errorf("the host's secret is in %s", p)
			}
			return nil
		})
	}
	var st syscall.Stat_t
	if err := syscall.Stat(s.path, &st); err != nil || st.Nlink != 1 || st.Mode&0o777 != 0o600 || st.Uid != 0 {
		t.Errorf("the host's secret changed: %+v %v", st, err)
	}
}

// buildTexts is everything a build says: its error, its streamed log, its record
// and its stored log.
func buildTexts(t *testing.T, b *template.Builder, name string, err error, log string) []string {
	t.Helper()
	out := []string{log}
	if err != nil {
		out = append(out, err.Error())
	}
	recs, _ := b.Builds(name)
	for _, r := range recs {
		out = append(out, r.Reason)
		entries, _ := b.BuildLogs(r.BuildID, 0, 0)
		for _, e := range entries {
			out = append(out, e.Message)
		}
	}
	return out
}

// TestAttackRunExitFile: a RUN step cannot make the builder read a host file by
// planting a link where the host side looks for something after the step.
func TestAttackRunExitFile(t *testing.T) {
	h := newHarness(t)
	s := newHostSecret(t)
	df := "FROM base\nRUN f=$(tr '\\0' '\\n' </proc/1/cmdline | grep -o '/\\.lelantos-exit-[0-9a-f]*' | head -1); " +
		"ln -sf " + s.path + " \"$f\"; for n in /.lelantos-exit /etc/hosts /etc/resolv.conf; do ln -sf " + s.path + " $n; done; true\n"
	var log syncBuffer
	_, err := h.builder.Build(context.Background(), template.BuildRequest{Name: "exitfile", Dockerfile: df}, &log)
	t.Logf("build: %v", err)
	s.check(t, buildTexts(t, h.builder, "exitfile", err, log.String()), filepath.Join(h.dir, "templates"))
}

// ociLayout writes an OCI image layout with the given layers (plain tars) into dir.
func ociLayout(t *testing.T, dir string, layers ...[]byte) (manifestDigest, configDigest string) {
	t.Helper()
	cfg, _ := json.Marshal(map[string]any{"architecture": "amd64", "os": "linux", "config": map[string]any{"Env": []string{"PATH=/bin"}}})
	configDigest = writeBlob(t, dir, cfg)
	var ls []map[string]any
	for _, l := range layers {
		ls = append(ls, map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": writeBlob(t, dir, l), "size": len(l)})
	}
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": configDigest, "size": len(cfg)},
		"layers": ls,
	})
	manifestDigest = writeBlob(t, dir, manifest)
	index, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []map[string]any{{
		"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifestDigest, "size": len(manifest)}}})
	if err := os.WriteFile(filepath.Join(dir, "index.json"), index, 0o644); err != nil {
		t.Fatal(err)
	}
	return manifestDigest, configDigest
}

func replaceWithLink(t *testing.T, p, target string) {
	t.Helper()
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

func blobFile(dir, digest string) string {
	return filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(digest, "sha256:"))
}

// TestAttackImages: image layouts whose files are links to host files, and layers
// that try to write outside the tree, link to host files or make devices, reach
// nothing of the host.
func TestAttackImages(t *testing.T) {
	b, dir := newStoreBuilder(t)
	s := newHostSecret(t)
	// A host file that is a valid layer: read through a link, it would unpack.
	hostLayer := filepath.Join(s.dir, "host-layer.tar")
	hostLayerData := makeTar(t, false, tarEntry{name: "leaked.txt", body: s.marker})
	if err := os.WriteFile(hostLayer, hostLayerData, 0o600); err != nil {
		t.Fatal(err)
	}
	s.watchFile(t, hostLayer)
	evil := makeTar(t, false,
		tarEntry{name: "etc/", typ: tar.TypeDir, mode: 0o755},
		tarEntry{name: "../../../../../../" + strings.TrimPrefix(s.dir, "/") + "/dotdot.txt", body: "x"},
		tarEntry{name: s.dir + "/absolute.txt", body: "x"},
		tarEntry{name: "a", typ: tar.TypeSymlink, link: s.dir},
		tarEntry{name: "a/through-link.txt", body: "x"},
		tarEntry{name: "up", typ: tar.TypeSymlink, link: "../../../../../../../.."},
		tarEntry{name: "up/" + strings.TrimPrefix(s.dir, "/") + "/through-up.txt", body: "x"},
		tarEntry{name: "dev/zero", typ: tar.TypeChar, major: 1, minor: 5},
		tarEntry{name: "dev/sda", typ: tar.TypeBlock, major: 8, minor: 0},
		tarEntry{name: "hard", typ: tar.TypeLink, link: s.path},
	)
	tests := []struct {
		name  string
		setup func(t *testing.T, layout string)
	}{
		{"index.json is a link to a host file", func(t *testing.T, layout string) {
			ociLayout(t, layout, makeTar(t, false, tarEntry{name: "f", body: "f"}))
			replaceWithLink(t, filepath.Join(layout, "index.json"), s.path)
		}},
		{"index.json is a link up to a host file", func(t *testing.T, layout string) {
			ociLayout(t, layout, makeTar(t, false, tarEntry{name: "f", body: "f"}))
			rel, _ := filepath.Rel(layout, s.path)
			replaceWithLink(t, filepath.Join(layout, "index.json"), rel)
		}},
		{"the manifest blob is a link to a host file", func(t *testing.T, layout string) {
			m, _ := ociLayout(t, layout, makeTar(t, false, tarEntry{name: "f", body: "f"}))
			replaceWithLink(t, blobFile(layout, m), s.path)
		}},
		{"a layer blob is a link to a host layer", func(t *testing.T, layout string) {
			// The layer's digest is the host file's: only where it is read from matters.
			ociLayout(t, layout, hostLayerData)
			sum := sha256.Sum256(hostLayerData)
			replaceWithLink(t, blobFile(layout, "sha256:"+hex.EncodeToString(sum[:])), hostLayer)
		}},
		{"the blobs directory is a link to the host", func(t *testing.T, layout string) {
			ociLayout(t, layout, makeTar(t, false, tarEntry{name: "f", body: "f"}))
			_ = os.RemoveAll(filepath.Join(layout, "blobs"))
			replaceWithLink(t, filepath.Join(layout, "blobs"), s.dir)
		}},
		{"docker save manifest.json is a link to a host file", func(t *testing.T, layout string) {
			replaceWithLink(t, filepath.Join(layout, "manifest.json"), s.path)
		}},
		{"a layer escapes, links and makes devices", func(t *testing.T, layout string) {
			ociLayout(t, layout, evil)
		}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bctx := t.TempDir()
			layout := filepath.Join(bctx, "image")
			if err := os.MkdirAll(layout, 0o755); err != nil {
				t.Fatal(err)
			}
			tc.setup(t, layout)
			before := hostSnapshot(t, s.dir)
			s.touched() // what the setup did
			name := "img" + string(rune('a'+i))
			var log syncBuffer
			_, err := b.Build(context.Background(), template.BuildRequest{Name: name, Dockerfile: "FROM ./image\n", ContextDir: bctx}, &log)
			t.Logf("build: %v", err)
			if hostSnapshot(t, s.dir) != before {
				t.Errorf("the host directory changed")
			}
			s.check(t, buildTexts(t, b, name, err, log.String()), filepath.Join(dir, "templates"))
			_ = filepath.Walk(filepath.Join(dir, "templates"), func(p string, fi os.FileInfo, err error) error {
				if err == nil && fi.Mode()&fs.ModeDevice != 0 {
					t.Errorf("device node %s in a tree", p)
				}
				return nil
			})
		})
	}
}

// hostSnapshot lists a host directory: names, modes, sizes.
func hostSnapshot(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	_ = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			b.WriteString(p + " " + fi.Mode().String() + " " + strconv.FormatInt(fi.Size(), 10) + "\n")
		}
		return nil
	})
	return b.String()
}

// TestAttackContext: a build context's links (.dockerignore, COPY sources, a
// directory on the way) resolve inside the context and never reach the host.
func TestAttackContext(t *testing.T) {
	b, dir := newStoreBuilder(t)
	s := newHostSecret(t)
	tests := []struct {
		name       string
		links      map[string]string
		dockerfile string
	}{
		{".dockerignore is a link to a host file", map[string]string{".dockerignore": s.path}, "FROM scratch\nCOPY a.txt /\n"},
		{"COPY of a link to a host file", map[string]string{"link": s.path}, "FROM scratch\nCOPY link /x\n"},
		{"COPY through a link to a host directory", map[string]string{"dirlink": s.dir}, "FROM scratch\nCOPY dirlink/host-secret.txt /x\n"},
		{"COPY of a relative link up", map[string]string{"up": "../../../../../../../../" + strings.TrimPrefix(s.path, "/")}, "FROM scratch\nCOPY up /x\n"},
		{"COPY of a wildcard over links", map[string]string{"l1": s.path, "l2": s.dir}, "FROM scratch\nCOPY l* /w/\n"},
		{"COPY of a directory holding links", map[string]string{"d/l1": s.path, "d/l2": s.dir}, "FROM scratch\nCOPY d /d\nCOPY d/l2/host-secret.txt /e\n"},
		{"ADD of a link to a host archive", map[string]string{"a.tar": filepath.Join(s.dir, "host.tar")}, "FROM scratch\nADD a.tar /\n"},
	}
	if err := os.WriteFile(filepath.Join(s.dir, "host.tar"), makeTar(t, false, tarEntry{name: "leaked", body: s.marker}), 0o600); err != nil {
		t.Fatal(err)
	}
	s.watchFile(t, filepath.Join(s.dir, "host.tar"))
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bctx := writeContext(t, map[string]string{"a.txt": "a\n"})
			for name, target := range tc.links {
				_ = os.MkdirAll(filepath.Dir(filepath.Join(bctx, name)), 0o755)
				if err := os.Symlink(target, filepath.Join(bctx, name)); err != nil {
					t.Fatal(err)
				}
			}
			s.touched()
			name := "ctx" + string(rune('a'+i))
			var log syncBuffer
			res, err := b.Build(context.Background(), template.BuildRequest{Name: name, Dockerfile: tc.dockerfile, ContextDir: bctx}, &log)
			t.Logf("build: %v", err)
			texts := buildTexts(t, b, name, err, log.String())
			s.check(t, texts, filepath.Join(dir, "templates"))
			if res != nil {
				s.check(t, nil, res.Metadata.Rootfs)
			}
		})
	}
}
