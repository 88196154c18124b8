package volume

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// newLocal is a Local in a fresh directory, closed (unmounting its volumes) before
// the directory is removed.
func newLocal(t *testing.T) *Local {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: loop devices and mounts")
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Skip("needs loop devices: /dev/loop-control is missing")
	}
	l, err := NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return l
}

const testID = "3d9a8f7e-1b2c-4d5e-8f90-a1b2c3d4e5f6"

func TestLocalLifecycle(t *testing.T) {
	l := newLocal(t)
	ctx := context.Background()
	if err := l.Create(ctx, testID, 32); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		id   string
		size int
		want error
	}{
		{"again", testID, 32, ErrExists},
		{"too small", "small", MinSizeMB - 1, ErrInvalid},
		{"bad ID", "../up", 32, ErrInvalid},
	} {
		if err := l.Create(ctx, tt.id, tt.size); !errors.Is(err, tt.want) {
			t.Errorf("create %s: %v, want %v", tt.name, err, tt.want)
		}
	}
	dir, err := l.Attach(ctx, testID)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil || st.Uid != DefaultUID || st.Mode&0o7777 != 0o755 {
		t.Fatalf("top %s: uid %d mode %o, %v", dir, st.Uid, st.Mode&0o7777, err)
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(dir, &sfs); err != nil || sfs.Type != unix.EXT4_SUPER_MAGIC {
		t.Fatalf("the volume is not its own file system: %+v, %v", sfs.Type, err)
	}
	tr, err := l.Open(ctx, testID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Write("/kept.txt", strings.NewReader("kept"), Attrs{}, false); err != nil {
		t.Fatal(err)
	}
	ents, err := tr.List("/", 1)
	tr.Close()
	if err != nil || len(ents) != 1 || ents[0].Name != "kept.txt" {
		t.Fatalf("listing of a new volume with one file: %+v, %v (lost+found must not show)", ents, err)
	}
	// Unmounted (a node stopping), then used again: the content is in the image.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if m, _ := isMount(filepath.Dir(dir)); m {
		t.Fatalf("still mounted after Close")
	}
	tr, err = l.Open(ctx, testID)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, tr, "/kept.txt"); got != "kept" {
		t.Errorf("after a remount: %q", got)
	}
	tr.Close()
	ids, err := l.List(ctx)
	if err != nil || len(ids) != 1 || ids[0] != testID {
		t.Errorf("list: %v, %v", ids, err)
	}
	if err := l.Delete(ctx, testID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(l.Dir(), testID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("volume directory left: %v", err)
	}
	for name, err := range map[string]error{
		"attach": func() error { _, err := l.Attach(ctx, testID); return err }(),
		"open":   func() error { _, err := l.Open(ctx, testID); return err }(),
		"delete": l.Delete(ctx, testID),
	} {
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("%s after delete: %v, want ErrNotFound", name, err)
		}
	}
}

func TestLocalQuota(t *testing.T) {
	l := newLocal(t)
	ctx := context.Background()
	if err := l.Create(ctx, testID, 32); err != nil {
		t.Fatal(err)
	}
	tr, err := l.Open(ctx, testID)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	for _, force := range []bool{false, true} {
		_, err = tr.Write("/big", io.LimitReader(rand.Reader, 64<<20), Attrs{}, force)
		if !errors.Is(err, ErrNoSpace) {
			t.Fatalf("writing 64 MiB into 32 MiB (force %v): %v, want ErrNoSpace", force, err)
		}
		if ents, _ := tr.List("/", 1); len(ents) != 0 {
			t.Errorf("a failed write left %+v", ents)
		}
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(l.Dir(), testID, "image"), &st); err != nil {
		t.Fatal(err)
	}
	if used := st.Blocks * 512; used > 32<<20 {
		t.Errorf("the image holds %d bytes on the host, more than the volume's 32 MiB", used)
	}
	if _, err := tr.Write("/small", strings.NewReader("fits"), Attrs{}, false); err != nil {
		t.Errorf("a small write after the full one: %v", err)
	}
}

// TestLocalRemountSharesFileSystem holds a volume's file system mounted elsewhere, as
// a sandbox's mount namespace does while the node restarts, and checks that using the
// volume again mounts that same file system rather than a second one over the image.
func TestLocalRemountSharesFileSystem(t *testing.T) {
	l := newLocal(t)
	ctx := context.Background()
	if err := l.Create(ctx, testID, 32); err != nil {
		t.Fatal(err)
	}
	dir, err := l.Attach(ctx, testID)
	if err != nil {
		t.Fatal(err)
	}
	held := t.TempDir()
	if err := unix.Mount(dir, held, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(held, unix.MNT_DETACH)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(held, "from-sandbox"), []byte("s"), 0o644); err != nil {
		t.Fatal(err)
	}
	tr, err := l.Open(ctx, testID)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if got := readAll(t, tr, "/from-sandbox"); got != "s" {
		t.Errorf("a write through the held mount: %q", got)
	}
	image := filepath.Join(l.Dir(), testID, "image")
	files, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	n := 0
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil && strings.TrimSpace(string(b)) == image {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d loop devices back the image, want 1", n)
	}
}
