package saferoot_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/saferoot"
)

// entry is one entry of a test archive.
type entry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func tarOf(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, ModTime: time.Unix(1700000000, 0)}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if h.Typeflag == tar.TypeChar {
			h.Devmajor, h.Devminor = 1, 5
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
	return buf.Bytes()
}

func gzipOf(t *testing.T, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// zeroBomb is a gzip-compressed tar holding one file of size zeros.
func zeroBomb(t *testing.T, size int64) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(&tar.Header{Name: "zeros", Typeflag: tar.TypeReg, Mode: 0o644, Size: size}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(tw, zeroReader{}, size); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(tw.Close(), zw.Close()); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestExtractAttacks: archives that try to write outside the tree, link to host
// files, make devices or expand without bound are contained or refused, and the
// host directory beside the tree never changes.
func TestExtractAttacks(t *testing.T) {
	tests := []struct {
		name    string
		archive func(w *world) []byte
		limits  saferoot.Limits
		mode    saferoot.Mode
		wantErr error
		want    map[string]string // files of the tree after, relative to it
		absent  []string
		check   func(t *testing.T, w *world, st saferoot.ExtractStats)
	}{
		{
			name: "dot-dot and absolute names",
			archive: func(w *world) []byte {
				return tarOf(t, entry{name: "../../../escape.txt", body: "a"}, entry{name: "/abs.txt", body: "b"},
					entry{name: "x/../../y.txt", body: "c"})
			},
			want: map[string]string{"dest/escape.txt": "a", "dest/abs.txt": "b", "dest/y.txt": "c"},
		},
		{
			name: "symlink to the host then a file through it",
			archive: func(w *world) []byte {
				return tarOf(t, entry{name: "a", typ: tar.TypeSymlink, link: w.host}, entry{name: "a/pwn.txt", body: "through"})
			},
			wantErr: fs.ErrExist, // a link to nothing in the tree: there is no directory to write in
		},
		{
			name: "symlink up then a file through it; a file over a symlink",
			archive: func(w *world) []byte {
				return tarOf(t, entry{name: "b", typ: tar.TypeSymlink, link: "../../../.."},
					entry{name: "b/pwn2.txt", body: "up"},
					entry{name: "abs", typ: tar.TypeSymlink, link: filepath.Join(w.host, "secret.txt")},
					entry{name: "abs", body: "replaced, not written through"})
			},
			check: func(t *testing.T, w *world, _ saferoot.ExtractStats) {
				if data, _ := os.ReadFile(filepath.Join(w.tree, "dest", "abs")); string(data) != "replaced, not written through" {
					t.Errorf("dest/abs = %q", data)
				}
				// Names resolve inside the target directory as inside a chroot there.
				if data, _ := os.ReadFile(filepath.Join(w.tree, "dest", "pwn2.txt")); string(data) != "up" {
					t.Errorf("the file through ../../.. should land at the target's top: %q", data)
				}
				if _, err := os.Stat(filepath.Join(w.tree, "pwn2.txt")); err == nil {
					t.Error("the file through ../../.. left the target directory")
				}
			},
		},
		{
			name: "symlink then a file through it, beneath",
			mode: saferoot.Beneath,
			archive: func(w *world) []byte {
				return tarOf(t, entry{name: "a", typ: tar.TypeSymlink, link: w.host}, entry{name: "a/pwn.txt", body: "x"})
			},
			wantErr: saferoot.ErrEscape,
		},
		{
			name: "hard link to a host file",
			archive: func(w *world) []byte {
				return tarOf(t, entry{name: "h", typ: tar.TypeLink, link: filepath.Join(w.host, "secret.txt")})
			},
			wantErr: fs.ErrNotExist,
		},
		{
			name: "hard link up to a host file",
			archive: func(w *world) []byte {
				return tarOf(t, entry{name: "h", typ: tar.TypeLink, link: "../../host/secret.txt"})
			},
			wantErr: fs.ErrNotExist,
		},
		{
			name: "hard link through a symlink to the host",
			archive: func(w *world) []byte {
				return tarOf(t, entry{name: "s", typ: tar.TypeSymlink, link: w.host}, entry{name: "h", typ: tar.TypeLink, link: "s/secret.txt"})
			},
			wantErr: fs.ErrNotExist,
		},
		{
			name: "hard link inside",
			archive: func(w *world) []byte {
				return tarOf(t, entry{name: "f", body: "shared"}, entry{name: "g", typ: tar.TypeLink, link: "f"})
			},
			want: map[string]string{"dest/g": "shared"},
		},
		{
			name: "device node",
			archive: func(w *world) []byte {
				return tarOf(t, entry{name: "zero", typ: tar.TypeChar}, entry{name: "after", body: "ok"})
			},
			want:   map[string]string{"dest/after": "ok"},
			absent: []string{"dest/zero"},
			check: func(t *testing.T, _ *world, st saferoot.ExtractStats) {
				if st.Devices != 1 {
					t.Errorf("devices %d, want 1", st.Devices)
				}
			},
		},
		{
			name:    "gzip bomb",
			archive: func(w *world) []byte { return zeroBomb(t, 256<<20) },
			wantErr: saferoot.ErrTooLarge,
			check: func(t *testing.T, w *world, _ saferoot.ExtractStats) {
				if fi, err := os.Stat(filepath.Join(w.tree, "dest", "zeros")); err == nil && fi.Size() > 2*saferoot.RatioFloor {
					t.Errorf("wrote %d bytes of the bomb", fi.Size())
				}
			},
		},
		{
			name: "content over the limit",
			archive: func(w *world) []byte {
				return tarOf(t, entry{name: "a", body: strings.Repeat("a", 600)}, entry{name: "b", body: strings.Repeat("b", 600)})
			},
			limits:  saferoot.Limits{Bytes: 1000},
			wantErr: saferoot.ErrTooLarge,
			absent:  []string{"dest/b"},
		},
		{
			name: "too many entries",
			archive: func(w *world) []byte {
				var es []entry
				for i := range 11 {
					es = append(es, entry{name: "f" + string(rune('a'+i))})
				}
				return tarOf(t, es...)
			},
			limits:  saferoot.Limits{Entries: 10},
			wantErr: saferoot.ErrTooLarge,
		},
		{
			name:    "xz",
			archive: func(w *world) []byte { return []byte{0xfd, '7', 'z', 'X', 'Z', 0, 1, 2, 3} },
			wantErr: saferoot.ErrCompression,
		},
		{
			name: "gzip",
			archive: func(w *world) []byte {
				return gzipOf(t, tarOf(t, entry{name: "d/", typ: tar.TypeDir, mode: 0o755}, entry{name: "d/f", body: "gz"}))
			},
			want: map[string]string{"dest/d/f": "gz"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			if err := os.Mkdir(filepath.Join(w.tree, "dest"), 0o755); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, w.host)
			r := w.open(t, tc.mode)
			st, err := r.Extract(context.Background(), bytes.NewReader(tc.archive(w)), "/dest", saferoot.ExtractOptions{Limits: tc.limits})
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) || tc.wantErr == nil && err != nil {
				t.Fatalf("extract: %v, want %v", err, tc.wantErr)
			}
			if after := snapshot(t, w.host); after != before {
				t.Fatalf("the host directory changed:\nbefore %s\nafter  %s", before, after)
			}
			var secret syscall.Stat_t
			if err := syscall.Stat(filepath.Join(w.host, "secret.txt"), &secret); err != nil || secret.Nlink != 1 {
				t.Fatalf("the host's secret got a hard link: %d %v", secret.Nlink, err)
			}
			_ = filepath.Walk(w.tree, func(p string, fi os.FileInfo, err error) error {
				if err == nil && fi.Mode().IsRegular() {
					if data, _ := os.ReadFile(p); bytes.Contains(data, []byte(w.marker)) {
						t.Errorf("%s holds the host's secret", p)
					}
				}
				if err == nil && fi.Mode()&fs.ModeDevice != 0 {
					t.Errorf("%s is a device node", p)
				}
				return nil
			})
			for name, want := range tc.want {
				if data, err := os.ReadFile(filepath.Join(w.tree, name)); err != nil || string(data) != want {
					t.Errorf("%s = %q, %v; want %q", name, data, err, want)
				}
			}
			for _, name := range tc.absent {
				if _, err := os.Lstat(filepath.Join(w.tree, name)); err == nil {
					t.Errorf("%s exists", name)
				}
			}
			if tc.check != nil {
				tc.check(t, w, st)
			}
		})
	}
}

// TestExtractLayers: whiteouts delete and opaque directories empty what earlier
// layers made, but keep the layer's own entries; modes and owners are kept or
// replaced.
func TestExtractLayers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (file owners)")
	}
	w := newWorld(t)
	r := w.open(t, saferoot.InRoot)
	ctx := context.Background()
	l1 := tarOf(t, entry{name: "keep", body: "k"}, entry{name: "gone", body: "g"}, entry{name: "opq/", typ: tar.TypeDir, mode: 0o755},
		entry{name: "opq/old", body: "o"}, entry{name: "bin/tool", body: "#!", mode: 0o4755})
	l2 := tarOf(t, entry{name: ".wh.gone"}, entry{name: "opq/new", body: "n"}, entry{name: "opq/.wh..wh..opq"}, entry{name: ".wh.."})
	if _, err := r.Extract(ctx, bytes.NewReader(l1), ".", saferoot.ExtractOptions{Whiteouts: true}); err != nil {
		t.Fatal(err)
	}
	_, err := r.Extract(ctx, bytes.NewReader(l2), ".", saferoot.ExtractOptions{Whiteouts: true})
	if err == nil || !strings.Contains(err.Error(), "bad whiteout") {
		t.Fatalf("a whiteout of ..: %v", err)
	}
	for name, want := range map[string]bool{"keep": true, "gone": false, "opq/old": false, "opq/new": true} {
		if _, err := os.Lstat(filepath.Join(w.tree, name)); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", name, err == nil, want)
		}
	}
	fi, err := os.Stat(filepath.Join(w.tree, "bin/tool"))
	if err != nil || fi.Mode()&fs.ModeSetuid == 0 {
		t.Errorf("bin/tool lost its setuid bit: %v %v", fi, err)
	}
	if _, err := r.Extract(ctx, bytes.NewReader(tarOf(t, entry{name: "owned", body: "o"})), ".", saferoot.ExtractOptions{Owner: &saferoot.Owner{UID: 42, GID: 43}}); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(w.tree, "owned")); fi.Sys().(*syscall.Stat_t).Uid != 42 || fi.Sys().(*syscall.Stat_t).Gid != 43 {
		t.Errorf("owner not replaced: %+v", fi.Sys())
	}
	if ok, err := saferoot.SniffTar(bytes.NewReader(gzipOf(t, l1))); !ok || err != nil {
		t.Errorf("SniffTar of a gzipped tar: %v %v", ok, err)
	}
	if ok, err := saferoot.SniffTar(strings.NewReader(strings.Repeat("not a tar", 100))); ok || err != nil {
		t.Errorf("SniffTar of text: %v %v", ok, err)
	}
}
