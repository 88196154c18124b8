package template_test

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/template"
)

// randomFile is n random bytes, which no file system compresses away.
func randomFile(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestPruneCache: past its cap, the build cache loses its least recently used
// entries (layers and uploads) that only it holds; layers whose files a
// template version shares cost nothing and stay, and versions are untouched.
func TestPruneCache(t *testing.T) {
	b, _ := newStoreBuilderWith(t, func(o *template.BuilderOptions) {
		o.CacheMaxBytes = 1 << 20
		o.LeaseTime = time.Nanosecond
	})
	ctx := context.Background()
	build := func(name, content string) *template.Result {
		t.Helper()
		dir := writeContext(t, map[string]string{"big.bin": content})
		res, err := b.Build(ctx, template.BuildRequest{Name: name, Dockerfile: "FROM scratch\nCOPY big.bin /\n", ContextDir: dir}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	build("one", randomFile(t, 2<<20))
	two := build("two", randomFile(t, 2<<20))
	st, err := b.PruneCache(ctx)
	if err != nil || st.Layers+st.Files != 0 {
		t.Fatalf("a cache whose files the versions hold: %+v %v, want nothing pruned", st, err)
	}
	// Deleted, "one" leaves its layers to the cache alone; an upload joins them.
	if err := b.Delete(ctx, "one", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GC(ctx, nil); err != nil {
		t.Fatal(err)
	}
	const team = "00000000-0000-0000-0000-000000000001"
	hash := strings.Repeat("d4", 32)
	if err := b.PutFile(ctx, team, hash, strings.NewReader(randomFile(t, 1<<20))); err != nil {
		t.Fatal(err)
	}
	st, err = b.PruneCache(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Bytes < 3<<20 || st.Freed < 2<<20 || st.Layers == 0 || st.Files != 1 {
		t.Errorf("prune: %+v, want the deleted template's layer and the upload gone", st)
	}
	if ok, _ := b.HasFile(team, hash); ok {
		t.Errorf("the upload stayed")
	}
	if data, err := os.ReadFile(filepath.Join(two.Metadata.Rootfs, "big.bin")); err != nil || len(data) != 2<<20 {
		t.Fatalf("the version of two: %d bytes, %v", len(data), err)
	}
	again := build("two", randomFile(t, 0)+string(mustRead(t, filepath.Join(two.Metadata.Rootfs, "big.bin"))))
	if again.CacheHits != 1 { // the COPY; the empty FROM scratch layer may have gone
		t.Errorf("a rebuild of two reused %d layers: its COPY layer was pruned", again.CacheHits)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestLeaseKeepsVersion: the version a create was handed stays while the
// create puts its sandbox on the node (no sandbox runs on it yet), through a
// rebuild and a delete of the template, and goes once the lease is over.
func TestLeaseKeepsVersion(t *testing.T) {
	b, _ := newStoreBuilderWith(t, func(o *template.BuilderOptions) { o.LeaseTime = 300 * time.Millisecond })
	ctx := context.Background()
	build := func(v string) {
		t.Helper()
		dir := writeContext(t, map[string]string{"v.txt": v})
		if _, err := b.Build(ctx, template.BuildRequest{Name: "web", Dockerfile: "FROM scratch\nCOPY v.txt /\n", ContextDir: dir}, nil); err != nil {
			t.Fatal(err)
		}
	}
	build("1")
	first, err := b.Lookup(ctx, "web") // what a create gets
	if err != nil {
		t.Fatal(err)
	}
	build("2")
	if removed, err := b.GC(ctx, nil); err != nil || len(removed) != 0 {
		t.Fatalf("GC during the lease removed %v, %v", removed, err)
	}
	if _, err := os.Stat(first.Rootfs); err != nil {
		t.Fatalf("the leased version went: %v", err)
	}
	second, err := b.Lookup(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, "web", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GC(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(second.Rootfs); err != nil {
		t.Fatalf("the delete removed a version a create was just handed: %v", err)
	}
	time.Sleep(400 * time.Millisecond)
	removed, err := b.GC(ctx, nil)
	if err != nil || len(removed) != 2 {
		t.Fatalf("GC after the leases removed %v, %v; want both versions", removed, err)
	}
}
