package saferoot

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzTar builds a small archive from a name, a link target and a type flag, the
// parts of a header an attacker controls that matter for escapes.
func fuzzTar(name, link string, typ byte, body []byte) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	hdr := &tar.Header{Name: name, Linkname: link, Typeflag: typ, Mode: 0o644, Size: int64(len(body))}
	if typ != tar.TypeReg {
		hdr.Size = 0
	}
	_ = tw.WriteHeader(hdr)
	if typ == tar.TypeReg {
		_, _ = tw.Write(body)
	}
	// A second entry written through whatever the first one made.
	_ = tw.WriteHeader(&tar.Header{Name: name + "/x", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1})
	_, _ = tw.Write([]byte("x"))
	_ = tw.Close()
	return b.Bytes()
}

// FuzzExtract unpacks archives with hostile names, links and types, and also raw
// bytes as an archive: Extract must never panic and never create anything outside
// the directory it was given.
func FuzzExtract(f *testing.F) {
	seeds := []struct {
		name, link string
		typ        byte
	}{
		{"a.txt", "", tar.TypeReg},
		{"../escape", "", tar.TypeReg},
		{"/abs", "", tar.TypeReg},
		{"l", "/", tar.TypeSymlink},
		{"l", "../../..", tar.TypeSymlink},
		{"h", "/etc/passwd", tar.TypeLink},
		{"h", "../outside", tar.TypeLink},
		{"d", "", tar.TypeDir},
		{"dev", "", tar.TypeBlock},
		{".wh..wh..opq", "", tar.TypeReg},
		{"a/.wh.b", "", tar.TypeReg},
		{"p", "", tar.TypeFifo},
	}
	for _, s := range seeds {
		f.Add(fuzzTar(s.name, s.link, s.typ, []byte("data")))
	}
	f.Add([]byte("\x1f\x8b\x08\x00garbage"))
	f.Add([]byte("BZh91AY&SY"))
	f.Fuzz(func(t *testing.T, archive []byte) {
		base := t.TempDir()
		tree := filepath.Join(base, "tree")
		if err := os.MkdirAll(filepath.Join(tree, "in"), 0o755); err != nil {
			t.Fatal(err)
		}
		r, err := Open(tree, InRoot)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		_, _ = r.Extract(context.Background(), bytes.NewReader(archive), "in",
			ExtractOptions{Whiteouts: true, Limits: Limits{Bytes: 1 << 20, Entries: 64, Ratio: 100}})
		// Nothing may appear beside the tree.
		entries, err := os.ReadDir(base)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Name() != "tree" {
				t.Fatalf("extraction created %s outside the tree", e.Name())
			}
		}
		top, _ := os.ReadDir(tree)
		for _, e := range top {
			if e.Name() != "in" && !strings.HasPrefix(e.Name(), ".") {
				t.Fatalf("extraction into in/ created %s beside it", e.Name())
			}
		}
	})
}
