package artifact_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/artifact"
)

// TestPruneKeepsWhatIsUsedOrRecent fetches three trees and prunes: a tree in
// use and one asked for within the idle time stay, the third goes (and is
// fetched again when asked for), a fetch left half done goes, and the tree the
// node adopted is never touched.
func TestPruneKeepsWhatIsUsedOrRecent(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: trees keep their owners")
	}
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	idx := artifact.NewIndex(log, nil)
	var names []string
	for _, greeting := range []string{"used\n", "recent\n", "idle\n", "adopted\n"} {
		src := t.TempDir()
		makeTree(t, src, greeting)
		name, err := idx.Name(ctx, src)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	gets := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gets[filepath.Base(r.URL.Path)]++
		idx.Handler().ServeHTTP(w, r)
	}))
	defer srv.Close()
	dir := t.TempDir()
	cache, err := artifact.NewCache(dir, srv.URL, srv.Client(), log)
	if err != nil {
		t.Fatal(err)
	}
	adoptedDir := t.TempDir()
	makeTree(t, adoptedDir, "adopted\n")
	if _, err := cache.Adopt(ctx, adoptedDir); err != nil {
		t.Fatal(err)
	}
	trees := map[string]string{}
	for _, n := range names[:3] {
		p, err := cache.Tree(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		trees[n] = p
	}
	// All three were last asked for an hour ago, the recent one just now.
	old := time.Now().Add(-time.Hour)
	for _, p := range trees {
		if err := os.Chtimes(filepath.Dir(p), old, old); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cache.Tree(ctx, names[1]); err != nil {
		t.Fatal(err)
	}
	partial := filepath.Join(filepath.Dir(trees[names[0]]), "partial-123")
	if err := os.Mkdir(partial, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(partial, old, old); err != nil {
		t.Fatal(err)
	}
	removed, err := cache.Prune(ctx, []string{trees[names[0]]}, 30*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(removed, []string{trees[names[2]]}) {
		t.Fatalf("removed %v, want only the idle tree %s", removed, trees[names[2]])
	}
	for i, n := range names[:2] {
		if _, err := os.Stat(filepath.Join(trees[n], "etc", "app", "greeting")); err != nil {
			t.Errorf("tree %d was removed: %v", i, err)
		}
	}
	if _, err := os.Stat(partial); !os.IsNotExist(err) {
		t.Errorf("the half-done fetch is still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(adoptedDir, "etc", "app", "greeting")); err != nil {
		t.Errorf("the adopted tree was touched: %v", err)
	}
	if p, err := cache.Tree(ctx, names[2]); err != nil || p != trees[names[2]] || gets[names[2]] != 2 {
		t.Fatalf("the pruned tree again: %s, %v, after %d fetches; want it fetched again", p, err, gets[names[2]])
	}
	if n, err := artifact.Name(ctx, trees[names[1]]); err != nil || n != names[1] {
		t.Errorf("a tree asked for again is named %s (%v), want %s: asking must not change it", n, err, names[1])
	}
}
