package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// entry is one tar entry for tests.
type entry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func makeTar(t *testing.T, gz bool, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	var out io.Writer = &buf
	var zw *gzip.Writer
	if gz {
		zw = gzip.NewWriter(&buf)
		out = zw
	}
	tw := tar.NewWriter(out)
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, e := range entries {
		typ, mode := e.typ, e.mode
		if typ == 0 {
			typ = tar.TypeReg
		}
		if mode == 0 {
			mode = 0o644
		}
		hdr := &tar.Header{Name: e.name, Typeflag: typ, Mode: mode, Linkname: e.link, ModTime: mtime}
		if typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
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

func TestExtractContext(t *testing.T) {
	for _, gz := range []bool{false, true} {
		dir := t.TempDir()
		data := makeTar(t, gz,
			entry{name: "app/", typ: tar.TypeDir, mode: 0o750},
			entry{name: "app/run.sh", body: "#!/bin/sh\necho hi\n", mode: 0o755},
			entry{name: "app/link", typ: tar.TypeSymlink, link: "run.sh"},
			entry{name: "app/hard", typ: tar.TypeLink, link: "app/run.sh"},
			entry{name: "./dup.txt", body: "first"},
			entry{name: "dup.txt", body: "second"},
			entry{name: "dev/null", typ: tar.TypeChar},
		)
		if err := extractContext(bytes.NewReader(data), dir); err != nil {
			t.Fatalf("gzip %v: %v", gz, err)
		}
		fi, err := os.Stat(filepath.Join(dir, "app/run.sh"))
		if err != nil || fi.Mode().Perm() != 0o755 || !fi.ModTime().Equal(time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)) {
			t.Errorf("gzip %v: run.sh %v %v", gz, fi, err)
		}
		if fi, err := os.Stat(filepath.Join(dir, "app")); err != nil || fi.Mode().Perm() != 0o750 {
			t.Errorf("gzip %v: app dir %v %v", gz, fi, err)
		}
		if l, err := os.Readlink(filepath.Join(dir, "app/link")); err != nil || l != "run.sh" {
			t.Errorf("gzip %v: symlink %q %v", gz, l, err)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "app/hard")); err != nil || !strings.Contains(string(b), "echo hi") {
			t.Errorf("gzip %v: hard link %q %v", gz, b, err)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "dup.txt")); string(b) != "second" {
			t.Errorf("gzip %v: a later entry must win, got %q", gz, b)
		}
		if _, err := os.Lstat(filepath.Join(dir, "dev/null")); err == nil {
			t.Errorf("gzip %v: a device was made", gz)
		}
	}
}

func TestExtractContextConfined(t *testing.T) {
	tests := []struct {
		name    string
		entries []entry
		wantErr bool
		inside  string // a file that must exist inside
	}{
		{name: "dot-dot is cleaned into the tree", entries: []entry{{name: "../../escaped", body: "x"}}, inside: "escaped"},
		{name: "absolute names land inside", entries: []entry{{name: "/abs/file", body: "x"}}, inside: "abs/file"},
		{name: "through an absolute symlink", wantErr: true, entries: []entry{
			{name: "out", typ: tar.TypeSymlink, link: "/tmp"}, {name: "out/escaped", body: "x"}}},
		{name: "through a relative symlink", wantErr: true, entries: []entry{
			{name: "up", typ: tar.TypeSymlink, link: "../.."}, {name: "up/escaped", body: "x"}}},
		{name: "a hard link to outside", wantErr: true, entries: []entry{
			{name: "up", typ: tar.TypeSymlink, link: ".."}, {name: "h", typ: tar.TypeLink, link: "up/secret"}}},
		{name: "not a tar archive", wantErr: true, entries: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := t.TempDir()
			if err := os.WriteFile(filepath.Join(parent, "secret"), []byte("s"), 0o600); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(parent, "ctx")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			data := []byte("this is not a tar archive, not at all, and it is long enough to be read as a header block")
			if tt.entries != nil {
				data = makeTar(t, false, tt.entries...)
			}
			err := extractContext(bytes.NewReader(data), dir)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			for _, p := range []string{filepath.Join(parent, "escaped"), "/tmp/escaped"} {
				if _, err := os.Lstat(p); err == nil {
					os.Remove(p)
					t.Errorf("%s was written outside the context", p)
				}
			}
			if tt.inside != "" {
				if _, err := os.Stat(filepath.Join(dir, tt.inside)); err != nil {
					t.Errorf("%s: %v", tt.inside, err)
				}
			}
		})
	}
}

func TestWriteTarRoundTrip(t *testing.T) {
	src := t.TempDir()
	for name, body := range map[string]string{"Dockerfile": "FROM base\n", "app/serve.py": "print(1)\n", ".dockerignore": "secret\n"} {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("serve.py", filepath.Join(src, "app/main.py")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(src, "empty"), 0o711); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := writeTar(zw, src); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	dst := t.TempDir()
	if err := extractContext(&buf, dst); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "app/serve.py")); err != nil || string(b) != "print(1)\n" {
		t.Errorf("serve.py: %q %v", b, err)
	}
	if fi, err := os.Stat(filepath.Join(dst, "app/serve.py")); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("serve.py mode: %v %v", fi, err)
	}
	if l, err := os.Readlink(filepath.Join(dst, "app/main.py")); err != nil || l != "serve.py" {
		t.Errorf("main.py: %q %v", l, err)
	}
	if fi, err := os.Stat(filepath.Join(dst, "empty")); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o711 {
		t.Errorf("empty dir: %v %v", fi, err)
	}
	if _, err := os.Stat(filepath.Join(dst, ".dockerignore")); err != nil {
		t.Errorf(".dockerignore must travel (the server honours it): %v", err)
	}
}
