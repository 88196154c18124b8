package volume

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func u32(v uint32) *uint32 { return &v }

// newTree is a volume of a Dirs backend in a fresh directory, and that directory.
func newTree(t *testing.T) (*Tree, string) {
	t.Helper()
	d, err := NewDirs(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const id = "0f6b2b44-5d0c-4c35-9f6e-3b1e3c7a9d10"
	if err := d.Create(ctx, id, 64); err != nil {
		t.Fatal(err)
	}
	tr, err := d.Open(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	dir, _ := d.Attach(ctx, id)
	return tr, dir
}

func readAll(t *testing.T, tr *Tree, name string) string {
	t.Helper()
	f, _, err := tr.Open(name)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestTreeWriteAndRead(t *testing.T) {
	tr, _ := newTree(t)
	tests := []struct {
		name    string
		path    string
		data    string
		attrs   Attrs
		force   bool
		wantErr error
		want    Entry // Name, Path, Mode, UID, GID checked
	}{
		{name: "new file with defaults", path: "/a.txt", data: "hello",
			want: Entry{Name: "a.txt", Path: "/a.txt", Mode: 0o644}},
		{name: "relative path is inside the volume", path: "b.txt", data: "b",
			want: Entry{Name: "b.txt", Path: "/b.txt", Mode: 0o644}},
		{name: "owner and mode", path: "/owned.txt", data: "x", attrs: Attrs{UID: u32(1000), GID: u32(1001), Mode: u32(0o600)},
			want: Entry{Name: "owned.txt", Path: "/owned.txt", Mode: 0o600, UID: 1000, GID: 1001}},
		{name: "existing file without force", path: "/a.txt", data: "again", wantErr: ErrExists},
		{name: "existing file with force", path: "/a.txt", data: "replaced", force: true,
			want: Entry{Name: "a.txt", Path: "/a.txt", Mode: 0o644}},
		{name: "missing parent", path: "/no/such/file", data: "x", wantErr: ErrNotFound},
		{name: "the top", path: "/", data: "x", wantErr: ErrExists},
		{name: "over a directory with force", path: "/dir", data: "x", force: true, wantErr: ErrExists},
		{name: "dot-dot stays inside", path: "/../../../c.txt", data: "c",
			want: Entry{Name: "c.txt", Path: "/c.txt", Mode: 0o644}},
		{name: "NUL byte", path: "/a\x00b", data: "x", wantErr: ErrInvalid},
	}
	if _, err := tr.MakeDir("/dir", Attrs{}, false); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := tr.Write(tt.path, strings.NewReader(tt.data), tt.attrs, tt.force)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("write: %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("write: %v", err)
			}
			if e.Name != tt.want.Name || e.Path != tt.want.Path || e.Type != TypeFile || e.Mode != tt.want.Mode ||
				e.UID != tt.want.UID || e.GID != tt.want.GID || e.Size != int64(len(tt.data)) {
				t.Errorf("entry %+v, want %+v of %d bytes", e, tt.want, len(tt.data))
			}
			if time.Since(e.Mtime) > time.Minute || e.Mtime.Location() != time.UTC {
				t.Errorf("mtime %v", e.Mtime)
			}
			if got := readAll(t, tr, tt.path); got != tt.data {
				t.Errorf("read back %q, want %q", got, tt.data)
			}
		})
	}
	if got := readAll(t, tr, "/a.txt"); got != "replaced" {
		t.Errorf("a.txt holds %q after the refused write", got)
	}
	ents, err := tr.List("/", 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name, ".lelantos-upload-") {
			t.Errorf("upload left behind: %s", e.Path)
		}
	}
}

func TestTreeMakeDirListRemove(t *testing.T) {
	tr, _ := newTree(t)
	steps := []struct {
		name    string
		run     func() error
		wantErr error
	}{
		{"make a directory", func() error { _, err := tr.MakeDir("/d", Attrs{}, false); return err }, nil},
		{"make it again", func() error { _, err := tr.MakeDir("/d", Attrs{}, false); return err }, ErrExists},
		{"make it again with force", func() error { _, err := tr.MakeDir("/d", Attrs{}, true); return err }, nil},
		{"without its parent", func() error { _, err := tr.MakeDir("/x/y", Attrs{}, false); return err }, ErrNotFound},
		{"parents with force", func() error {
			_, err := tr.MakeDir("/p/q/r", Attrs{UID: u32(1000), GID: u32(1000), Mode: u32(0o750)}, true)
			return err
		}, nil},
		{"over a file", func() error {
			if _, err := tr.Write("/f", strings.NewReader("f"), Attrs{}, false); err != nil {
				return err
			}
			_, err := tr.MakeDir("/f", Attrs{}, true)
			return err
		}, ErrExists},
		{"below a file", func() error { _, err := tr.MakeDir("/f/g", Attrs{}, true); return err }, ErrNotFound},
		{"list a file", func() error { _, err := tr.List("/f", 1); return err }, ErrNotFound},
		{"list a missing directory", func() error { _, err := tr.List("/nope", 1); return err }, ErrNotFound},
		{"list with depth 0", func() error { _, err := tr.List("/", 0); return err }, ErrInvalid},
		{"remove a missing entry", func() error { return tr.Remove("/nope") }, ErrNotFound},
		{"remove the top", func() error { return tr.Remove("/") }, ErrNotFound},
	}
	for _, s := range steps {
		if err := s.run(); !errors.Is(err, s.wantErr) || (s.wantErr == nil && err != nil) {
			t.Fatalf("%s: %v, want %v", s.name, err, s.wantErr)
		}
	}
	for _, p := range []string{"/p", "/p/q", "/p/q/r"} {
		e, err := tr.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if e.Type != TypeDirectory || e.Mode != 0o750 || e.UID != 1000 || e.GID != 1000 {
			t.Errorf("%s: %+v, want a directory 0750 of 1000:1000", p, e)
		}
	}
	paths := func(ents []Entry) []string {
		var out []string
		for _, e := range ents {
			out = append(out, e.Path)
		}
		return out
	}
	one, err := tr.List("/", 1)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := paths(one), []string{"/d", "/f", "/p"}; !slices.Equal(got, want) {
		t.Errorf("list / depth 1: %v, want %v", got, want)
	}
	deep, err := tr.List("/p", 3)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := paths(deep), []string{"/p/q", "/p/q/r"}; !slices.Equal(got, want) {
		t.Errorf("list /p depth 3: %v, want %v", got, want)
	}
	if err := tr.Remove("/p"); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Stat("/p/q"); !errors.Is(err, ErrNotFound) {
		t.Errorf("stat after recursive remove: %v", err)
	}
}

func TestTreeSetAttrs(t *testing.T) {
	tr, _ := newTree(t)
	if _, err := tr.Write("/f", strings.NewReader("x"), Attrs{}, false); err != nil {
		t.Fatal(err)
	}
	e, err := tr.SetAttrs("/f", Attrs{UID: u32(1001), GID: u32(1002), Mode: u32(0o4755)})
	if err != nil {
		t.Fatal(err)
	}
	if e.UID != 1001 || e.GID != 1002 || e.Mode != 0o4755 {
		t.Errorf("after update: %+v", e)
	}
	if e, err = tr.SetAttrs("/f", Attrs{GID: u32(7)}); err != nil || e.UID != 1001 || e.GID != 7 {
		t.Errorf("gid only: %+v, %v (uid must stay)", e, err)
	}
	if _, err := tr.SetAttrs("/missing", Attrs{Mode: u32(0o644)}); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing: %v", err)
	}
}

// TestTreeStaysInside plants what a sandbox could leave in a volume (links out of it,
// a FIFO, a link swapped for a directory) and checks that no host-side operation
// reads, writes, lists or removes anything outside it, nor hangs.
func TestTreeStaysInside(t *testing.T) {
	tr, dir := newTree(t)
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("host secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	plant := func(target, name string) {
		t.Helper()
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	plant(secret, "abs")
	plant("../../../../../../.."+secret, "rel")
	plant(outside, "outdir")
	if err := unix.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"/abs", "/rel", "/outdir/secret", "/fifo"} {
		if f, _, err := tr.Open(name); err == nil {
			b, _ := io.ReadAll(f)
			f.Close()
			t.Errorf("read %s: got %q", name, b)
		} else if !errors.Is(err, ErrNotFound) {
			t.Errorf("read %s: %v, want ErrNotFound", name, err)
		}
	}
	if _, err := tr.List("/outdir", 1); !errors.Is(err, ErrNotFound) {
		t.Errorf("list through a link out: %v", err)
	}
	// A write through the link to a directory outside lands nowhere outside.
	if _, err := tr.Write("/outdir/planted", strings.NewReader("x"), Attrs{}, false); err == nil {
		t.Errorf("write through a link out succeeded")
	}
	// Forced writes over links replace the link, not its target.
	for _, name := range []string{"/abs", "/rel"} {
		if _, err := tr.Write(name, strings.NewReader("new"), Attrs{}, true); err != nil {
			t.Errorf("forced write over link %s: %v", name, err)
		}
	}
	if _, err := tr.MakeDir("/outdir/newdir", Attrs{}, true); err != nil {
		t.Logf("make directory through a link out: %v", err)
	}
	if _, err := tr.SetAttrs("/outdir", Attrs{UID: u32(4242)}); err != nil {
		t.Fatal(err)
	}
	if err := tr.Remove("/outdir"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(secret)
	if err != nil || string(b) != "host secret" {
		t.Fatalf("the file outside changed: %q, %v", b, err)
	}
	ents, _ := os.ReadDir(outside)
	if len(ents) != 1 {
		t.Errorf("entries appeared outside: %v", ents)
	}
	var st unix.Stat_t
	if err := unix.Stat(outside, &st); err != nil || st.Uid == 4242 {
		t.Errorf("the directory outside changed owner: %+v, %v", st.Uid, err)
	}
	if e, err := tr.Stat("/abs"); err != nil || e.Type != TypeFile {
		t.Errorf("the link was not replaced by the forced write: %+v, %v", e, err)
	}
}

func TestTreeStatLink(t *testing.T) {
	tr, dir := newTree(t)
	if err := os.Symlink("/somewhere/else", filepath.Join(dir, "l")); err != nil {
		t.Fatal(err)
	}
	e, err := tr.Stat("/l")
	if err != nil {
		t.Fatal(err)
	}
	if e.Type != TypeSymlink || e.Target != "/somewhere/else" || e.Name != "l" {
		t.Errorf("link: %+v", e)
	}
	if _, err := tr.SetAttrs("/l", Attrs{Mode: u32(0o600)}); !errors.Is(err, ErrInvalid) {
		t.Errorf("mode of a link: %v, want ErrInvalid", err)
	}
	top, err := tr.Stat("/")
	if err != nil || top.Type != TypeDirectory || top.Path != "/" || top.UID != DefaultUID {
		t.Errorf("top: %+v, %v", top, err)
	}
}
