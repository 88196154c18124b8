package saferoot_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"lelantos.dev/lelantos/internal/saferoot"
)

// TestWriteAttacks: writes through links land in the tree or fail; the host's
// files keep their content, mode and owner.
func TestWriteAttacks(t *testing.T) {
	tests := []struct {
		name string
		op   func(r *saferoot.Root, w *world) error
	}{
		{"create over a link", func(r *saferoot.Root, w *world) error { _, err := r.Create("abs", 0o644); return err }},
		{"create through a dir link", func(r *saferoot.Root, w *world) error { _, err := r.Create("absdir/new.txt", 0o644); return err }},
		{"create through a relative dir link", func(r *saferoot.Root, w *world) error { _, err := r.Create("updir/new.txt", 0o644); return err }},
		{"write file over a link", func(r *saferoot.Root, w *world) error { return r.WriteFile("abs", []byte("pwned"), 0o644) }},
		{"chmod a link", func(r *saferoot.Root, w *world) error { return r.Chmod("abs", 0o777) }},
		{"chown a link", func(r *saferoot.Root, w *world) error { return r.Lchown("abs", 1234, 1234) }},
		{"chown through a dir link", func(r *saferoot.Root, w *world) error { return r.Lchown("absdir/secret.txt", 1234, 1234) }},
		{"chmod through a dir link", func(r *saferoot.Root, w *world) error { return r.Chmod("absdir/secret.txt", 0o777) }},
		{"remove through a dir link", func(r *saferoot.Root, w *world) error { return r.RemoveAll("absdir/secrets") }},
		{"remove a dir link", func(r *saferoot.Root, w *world) error { return r.RemoveAll("updir") }},
		{"mkdir through a dir link", func(r *saferoot.Root, w *world) error {
			return r.MkdirAll("absdir/made/deeper", 0o755, saferoot.Owner{})
		}},
		{"hard link to a host path", func(r *saferoot.Root, w *world) error { return r.Link(filepath.Join(w.host, "secret.txt"), "hard") }},
		{"rename into a dir link", func(r *saferoot.Root, w *world) error { return r.Rename("abs", "absdir/moved") }},
		{"xattr through a dir link", func(r *saferoot.Root, w *world) error {
			return r.Setxattr("absdir/secret.txt", "user.pwned", []byte("1"))
		}},
		{"symlink through a dir link", func(r *saferoot.Root, w *world) error { return r.Symlink("x", "absdir/made-link") }},
		{"fifo through a dir link", func(r *saferoot.Root, w *world) error { return r.Mkfifo("absdir/made-fifo", 0o644) }},
	}
	for _, mode := range []saferoot.Mode{saferoot.InRoot, saferoot.Beneath} {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				w2 := newWorld(t)
				w2.mk(t, map[string]string{"abs@": filepath.Join(w2.host, "secret.txt"), "absdir@": w2.host, "updir@": "../../host"})
				before := snapshot(t, w2.host)
				_ = tc.op(w2.open(t, mode), w2)
				if after := snapshot(t, w2.host); after != before {
					t.Fatalf("mode %d: the host directory changed:\nbefore %s\nafter  %s", mode, before, after)
				}
			})
		}
	}
}

// snapshot describes a directory tree: names, modes, owners, contents, xattrs.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		b.WriteString(p + " " + fi.Mode().String() + " " + itoa(st.Uid) + ":" + itoa(st.Gid))
		if fi.Mode().IsRegular() {
			data, _ := os.ReadFile(p)
			b.WriteString(" " + string(data))
		}
		if n, _ := unix.Llistxattr(p, nil); n > 0 {
			b.WriteString(" xattrs")
		}
		b.WriteString("\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }
