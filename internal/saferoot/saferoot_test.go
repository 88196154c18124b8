package saferoot_test

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"lelantos.dev/lelantos/internal/saferoot"
)

// world is a host directory with a secret beside a tree the host must not trust.
type world struct {
	host   string // holds secret.txt and secrets/secret.txt, mode 0600
	tree   string
	marker string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	dir := t.TempDir()
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	w := &world{host: filepath.Join(dir, "host"), tree: filepath.Join(dir, "tree"), marker: "host-secret-" + hex.EncodeToString(b)}
	for _, d := range []string{w.host, filepath.Join(w.host, "secrets"), w.tree} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{filepath.Join(w.host, "secret.txt"), filepath.Join(w.host, "secrets", "secret.txt")} {
		if err := os.WriteFile(p, []byte(w.marker), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

func (w *world) open(t *testing.T, mode saferoot.Mode) *saferoot.Root {
	t.Helper()
	r, err := saferoot.Open(w.tree, mode)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// mk builds entries of the tree: "name" -> "content", "name/" a directory,
// "name@" a symbolic link to the value.
func (w *world) mk(t *testing.T, entries map[string]string) {
	t.Helper()
	for name, v := range entries {
		switch {
		case strings.HasSuffix(name, "@"):
			p := filepath.Join(w.tree, strings.TrimSuffix(name, "@"))
			_ = os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.Symlink(v, p); err != nil {
				t.Fatal(err)
			}
		case strings.HasSuffix(name, "/"):
			if err := os.MkdirAll(filepath.Join(w.tree, name), 0o755); err != nil {
				t.Fatal(err)
			}
		default:
			p := filepath.Join(w.tree, name)
			_ = os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestReadAttacks: names and links that point out of the tree reach nothing of the
// host in either mode; Beneath says so with ErrEscape.
func TestReadAttacks(t *testing.T) {
	w := newWorld(t)
	w.mk(t, map[string]string{
		"etc/passwd":   "root:x:0:0::/root:/bin/sh\n",
		"abs@":         filepath.Join(w.host, "secret.txt"),
		"absdir@":      w.host,
		"up@":          "../../host/secret.txt",
		"updir@":       "../../host",
		"loop@":        "loop",
		"a/loop2@":     "../b/loop3",
		"b/loop3@":     "../a/loop2",
		"lib@":         "/usr/lib",
		"usr/lib/libc": "libc",
		"big":          strings.Repeat("x", 4096),
	})
	tests := []struct {
		name    string
		path    string
		want    string // content, when the read must work
		inRoot  error  // expected error in InRoot mode (nil: want)
		beneath error  // expected error in Beneath mode
	}{
		{"plain file", "etc/passwd", "root:x:0:0::/root:/bin/sh\n", nil, nil},
		{"absolute name", "/etc/passwd", "root:x:0:0::/root:/bin/sh\n", nil, nil},
		{"dot-dot name", "../../../host/secret.txt", "", fs.ErrNotExist, fs.ErrNotExist},
		{"dot-dot inside", "etc/../../host/secret.txt", "", fs.ErrNotExist, fs.ErrNotExist},
		{"absolute link", "abs", "", fs.ErrNotExist, saferoot.ErrEscape},
		{"through absolute dir link", "absdir/secret.txt", "", fs.ErrNotExist, saferoot.ErrEscape},
		{"relative link up", "up", "", fs.ErrNotExist, saferoot.ErrEscape},
		{"through relative dir link", "updir/secrets/secret.txt", "", fs.ErrNotExist, saferoot.ErrEscape},
		{"absolute link inside", "lib/libc", "libc", nil, saferoot.ErrEscape},
		{"self loop", "loop", "", syscall.ELOOP, syscall.ELOOP},
		{"two-link loop", "a/loop2", "", syscall.ELOOP, syscall.ELOOP},
		{"a directory", "etc", "", saferoot.ErrNotRegular, saferoot.ErrNotRegular},
		{"over the limit", "big", "", saferoot.ErrTooLarge, saferoot.ErrTooLarge},
	}
	for _, mode := range []saferoot.Mode{saferoot.InRoot, saferoot.Beneath} {
		r := w.open(t, mode)
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				want := tc.inRoot
				if mode == saferoot.Beneath {
					want = tc.beneath
				}
				data, err := r.ReadFile(tc.path, 1024)
				if strings.Contains(string(data), w.marker) {
					t.Fatalf("read the host's secret through %s", tc.path)
				}
				if want != nil {
					if !errors.Is(err, want) {
						t.Fatalf("mode %d: ReadFile(%s) = %q, %v; want %v", mode, tc.path, data, err, want)
					}
					return
				}
				if err != nil || string(data) != tc.want {
					t.Fatalf("mode %d: ReadFile(%s) = %q, %v; want %q", mode, tc.path, data, err, tc.want)
				}
			})
		}
	}
}

// TestSpecialFiles: FIFOs and device nodes are refused at once, never opened.
func TestSpecialFiles(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (device nodes)")
	}
	w := newWorld(t)
	if err := unix.Mkfifo(filepath.Join(w.tree, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The host's /dev/zero: read, it would never end.
	if err := unix.Mknod(filepath.Join(w.tree, "zero"), unix.S_IFCHR|0o644, int(unix.Mkdev(1, 5))); err != nil {
		t.Fatal(err)
	}
	w.mk(t, map[string]string{"fifolink@": "/fifo"})
	r := w.open(t, saferoot.InRoot)
	for _, name := range []string{"fifo", "zero", "fifolink"} {
		done := make(chan error, 1)
		go func() { _, err := r.ReadFile(name, 1<<20); done <- err }()
		select {
		case err := <-done:
			if !errors.Is(err, saferoot.ErrNotRegular) {
				t.Errorf("ReadFile(%s): %v, want ErrNotRegular", name, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("ReadFile(%s) hangs", name)
		}
	}
}

// TestMountsAndMagicLinks: a mount inside the tree (the host's /proc, a bind mount of
// a host directory) is not crossed, so /proc/self/root-style links lead nowhere.
func TestMountsAndMagicLinks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (mounts)")
	}
	w := newWorld(t)
	w.mk(t, map[string]string{"proc/": "", "bind/": "", "magic@": "/proc/self/root" + w.host + "/secret.txt"})
	for _, m := range []struct{ src, dst string }{{"/proc", "proc"}, {w.host, "bind"}} {
		dst := filepath.Join(w.tree, m.dst)
		if err := unix.Mount(m.src, dst, "", unix.MS_BIND, ""); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = unix.Unmount(dst, unix.MNT_DETACH) })
	}
	for _, mode := range []saferoot.Mode{saferoot.InRoot, saferoot.Beneath} {
		r := w.open(t, mode)
		for _, name := range []string{"proc/self/root" + w.host + "/secret.txt", "magic", "bind/secret.txt", "proc/1/environ"} {
			data, err := r.ReadFile(name, 1<<20)
			if strings.Contains(string(data), w.marker) || err == nil {
				t.Fatalf("mode %d: read %s through a mount: %q", mode, name, data)
			}
			if name != "magic" || mode == saferoot.InRoot {
				if !errors.Is(err, saferoot.ErrEscape) {
					t.Errorf("mode %d: %s: %v, want ErrEscape", mode, name, err)
				}
			}
		}
	}
}

// TestSwappedLink: a directory replaced by a link to the host between (and during)
// calls never leads a read or a write out of the tree.
func TestSwappedLink(t *testing.T) {
	w := newWorld(t)
	w.mk(t, map[string]string{"d/secret.txt": "inside"})
	r := w.open(t, saferoot.InRoot)
	d := filepath.Join(w.tree, "d")
	if err := os.Rename(d, filepath.Join(w.tree, "d.real")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("d.real", d); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tmp := d + ".tmp"
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			// Point d at the tree's directory, then at the host's, atomically.
			target := "d.real"
			if i%2 == 1 {
				target = w.host
			}
			_ = os.Remove(tmp)
			_ = os.Symlink(target, tmp)
			_ = os.Rename(tmp, d)
		}
	}()
	inside := 0
	for range 2000 {
		data, err := r.ReadFile("d/secret.txt", 1<<10)
		if strings.Contains(string(data), w.marker) {
			t.Fatal("read the host's secret through a swapped link")
		}
		if err == nil {
			inside++
		}
		if f, err := r.Create("d/new.txt", 0o644); err == nil {
			f.Close()
			_ = r.Remove("d/new.txt")
		}
	}
	close(stop)
	<-done
	if _, err := os.Lstat(filepath.Join(w.host, "new.txt")); err == nil {
		t.Fatal("a write went through the swapped link into the host")
	}
	if inside == 0 {
		t.Error("no read of the tree's own file worked during the swaps")
	}
}

// TestOperations: the ordinary operations do what os does, inside the tree.
func TestOperations(t *testing.T) {
	w := newWorld(t)
	w.mk(t, map[string]string{"usr/lib/": "", "lib@": "/usr/lib", "etc/hosts": "127.0.0.1 localhost\n"})
	r := w.open(t, saferoot.InRoot)
	if err := r.MkdirAll("/lib/app/sub", 0o750, saferoot.Owner{UID: 7, GID: 8}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(w.tree, "usr/lib/app/sub"))
	if err != nil || fi.Mode().Perm() != 0o750 || fi.Sys().(*syscall.Stat_t).Uid != 7 {
		t.Fatalf("MkdirAll through an absolute link: %v %v", fi, err)
	}
	if err := r.WriteFile("lib/app/f", []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.Chmod("lib/app/f", 0o755|fs.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	if fi, err := r.Stat("/lib/app/f"); err != nil || fi.Mode()&fs.ModeSetuid == 0 || fi.Size() != 4 {
		t.Fatalf("stat: %v %v", fi, err)
	}
	if fi, err := r.Lstat("lib"); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("lstat of a link: %v %v", fi, err)
	}
	if l, err := r.Readlink("lib"); err != nil || l != "/usr/lib" {
		t.Fatalf("readlink: %q %v", l, err)
	}
	if err := r.Link("lib/app/f", "etc/f2"); err != nil {
		t.Fatal(err)
	}
	if err := r.Rename("etc/f2", "etc/f3"); err != nil {
		t.Fatal(err)
	}
	if data, err := r.ReadFile("etc/f3", 10); err != nil || string(data) != "data" {
		t.Fatalf("hard link: %q %v", data, err)
	}
	mt := time.Unix(1700000000, 0)
	if err := r.Lchtimes("etc/f3", mt, mt); err != nil {
		t.Fatal(err)
	}
	if err := r.Lchtimes(".", mt, mt); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(w.tree); !fi.ModTime().Equal(mt) {
		t.Errorf("top's time %v", fi.ModTime())
	}
	if err := r.Setxattr("etc/f3", "user.k", []byte("v")); err != nil && !errors.Is(err, unix.ENOTSUP) {
		t.Fatal(err)
	} else if err == nil {
		if v, err := r.Getxattr("etc/f3", "user.k"); err != nil || string(v) != "v" {
			t.Errorf("getxattr: %q %v", v, err)
		}
		if names, err := r.Listxattr("etc/f3"); err != nil || len(names) != 1 {
			t.Errorf("listxattr: %v %v", names, err)
		}
	}
	var walked []string
	err = r.Walk(".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		walked = append(walked, name)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(walked, " "); got != ". etc etc/f3 etc/hosts lib usr usr/lib usr/lib/app usr/lib/app/f usr/lib/app/sub" {
		t.Errorf("walk: %s", got)
	}
	if err := r.Remove("/"); !errors.Is(err, saferoot.ErrRoot) {
		t.Errorf("remove of the top: %v", err)
	}
	if err := r.RemoveAll("usr"); err != nil {
		t.Fatal(err)
	}
	if err := r.RemoveAll("no/such/thing"); err != nil {
		t.Errorf("RemoveAll of nothing: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(w.tree, "usr")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("usr survived RemoveAll: %v", err)
	}
	sub, err := r.Sub("etc", saferoot.Beneath)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if data, err := sub.ReadFile("hosts", 100); err != nil || !strings.Contains(string(data), "localhost") {
		t.Errorf("sub tree: %q %v", data, err)
	}
}
