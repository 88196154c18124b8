package main

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteLayer: a tree's entries land under the layer's path, after the
// directories of that path, with links kept and a file of several links
// written once.
func TestWriteLayer(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "etc", "hostname"), []byte("box\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(dir, "etc", "hostname"), filepath.Join(dir, "etc", "again")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("etc/hostname", filepath.Join(dir, "name")); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		at   string
		want []string // name, type, link target or content
	}{
		{"/", []string{"etc/ d", "etc/again f box\n", "etc/hostname h etc/again", "name s etc/hostname"}},
		{"/opt/x", []string{"opt/ d", "opt/x/ d", "opt/x/etc/ d", "opt/x/etc/again f box\n", "opt/x/etc/hostname h opt/x/etc/again", "opt/x/name s etc/hostname"}},
	} {
		t.Run(tt.at, func(t *testing.T) {
			var buf bytes.Buffer
			if err := writeLayer(&buf, dir, tt.at); err != nil {
				t.Fatal(err)
			}
			var got []string
			tr := tar.NewReader(&buf)
			for {
				h, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				switch h.Typeflag {
				case tar.TypeDir:
					got = append(got, h.Name+" d")
				case tar.TypeReg:
					b, _ := io.ReadAll(tr)
					got = append(got, h.Name+" f "+string(b))
					if h.Mode&0o777 != 0o640 {
						t.Errorf("%s: mode %o, want 640", h.Name, h.Mode)
					}
				case tar.TypeLink:
					got = append(got, h.Name+" h "+h.Linkname)
				case tar.TypeSymlink:
					got = append(got, h.Name+" s "+h.Linkname)
				}
			}
			if len(got) != len(tt.want) {
				t.Fatalf("entries %q, want %q", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("entry %d = %q, want %q", i, got[i], tt.want[i])
				}
			}
		})
	}
}
