package artifact_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"lelantos.dev/lelantos/internal/artifact"
)

// makeTree writes a small tree with every kind of entry a template has.
func makeTree(t *testing.T, dir, greeting string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "etc", "app"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "etc", "app", "greeting"), []byte(greeting), 0o640))
	must(os.Symlink("app/greeting", filepath.Join(dir, "etc", "hello")))
	must(os.Link(filepath.Join(dir, "etc", "app", "greeting"), filepath.Join(dir, "etc", "again")))
	must(unix.Mkfifo(filepath.Join(dir, "etc", "pipe"), 0o600))
	must(os.Mkdir(filepath.Join(dir, "tmp"), 0o755))
	must(os.Chmod(filepath.Join(dir, "tmp"), 0o777|os.ModeSticky))
	must(os.Lchown(filepath.Join(dir, "etc", "app", "greeting"), 1000, 1000))
	if err := unix.Setxattr(filepath.Join(dir, "etc", "app", "greeting"), "user.kind", []byte("test"), 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
		t.Fatal(err)
	}
}

// TestFetchedTreeIsTheSame: a tree the Index serves is unpacked by a Cache
// into a tree of the same name, with its modes, owners, links and
// attributes; the second ask is served from the cache.
func TestFetchedTreeIsTheSame(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: trees keep their owners")
	}
	ctx := context.Background()
	src := t.TempDir()
	makeTree(t, src, "hello\n")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	idx := artifact.NewIndex(log, nil)
	name, err := idx.Name(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := artifact.Name(ctx, src); err != nil || again != name {
		t.Fatalf("a second naming = %s, %v; want %s", again, err, name)
	}
	var gets int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gets++
		idx.Handler().ServeHTTP(w, r)
	}))
	defer srv.Close()
	cache, err := artifact.NewCache(t.TempDir(), srv.URL, srv.Client(), log)
	if err != nil {
		t.Fatal(err)
	}
	got, err := cache.Tree(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := artifact.Name(ctx, got); err != nil || n != name {
		t.Fatalf("the fetched tree is named %s (%v), want %s", n, err, name)
	}
	fi, err := os.Stat(filepath.Join(got, "tmp"))
	if err != nil || fi.Mode()&os.ModeSticky == 0 {
		t.Fatalf("tmp: %v, %v; want it sticky", fi.Mode(), err)
	}
	if _, err := cache.Tree(ctx, name); err != nil || gets != 1 {
		t.Fatalf("second ask: %v after %d fetches; want it from the cache", err, gets)
	}
}

// TestCacheRefusesAnotherTree attacks the cache: a server answering a name
// with another tree's stream, a name that is not a content address, and a
// name the server does not know leave nothing behind.
func TestCacheRefusesAnotherTree(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: trees keep their owners")
	}
	ctx := context.Background()
	honest, other := t.TempDir(), t.TempDir()
	makeTree(t, honest, "hello\n")
	makeTree(t, other, "evil\n")
	name, err := artifact.Name(ctx, honest)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, name) {
			_ = artifact.WriteTree(r.Context(), w, other)
			return
		}
		http.Error(w, "unknown", http.StatusNotFound)
	}))
	defer srv.Close()
	dir := t.TempDir()
	cache, err := artifact.NewCache(dir, srv.URL, srv.Client(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cache.Tree(ctx, name); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("a swapped stream = %v, want a mismatch", err)
	}
	for _, bad := range []string{"../../etc", "sha256:" + strings.Repeat("A", 64), "sha256:abc"} {
		if _, err := cache.Tree(ctx, bad); !errors.Is(err, artifact.ErrInvalid) {
			t.Errorf("Tree(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	if _, err := cache.Tree(ctx, "sha256:"+strings.Repeat("0", 64)); err == nil {
		t.Error("an unknown name was fetched")
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*", "*"))
	if len(left) != 0 {
		t.Fatalf("left behind: %v", left)
	}
}
