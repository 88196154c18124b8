package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/template"
)

const testTreeHash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// makeTree writes a small tree with a file, a directory and a link that
// points out of it.
func makeTree(t *testing.T, content string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tree")
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "etc", "hello"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/shadow", filepath.Join(dir, "etc", "link")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// TestBuiltinCacheEntries: an entry is found only once stored complete; its
// tree shares the source's files; links stay links; leftovers of a server
// that stopped while storing are removed; a new store replaces an entry.
func TestBuiltinCacheEntries(t *testing.T) {
	ctx := context.Background()
	c := newBuiltinCache(t.TempDir())
	if _, ok := c.lookup("tiny", testTreeHash); ok {
		t.Fatal("an empty cache has an entry")
	}
	unlock, err := c.lock(ctx, "tiny", testTreeHash, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	key := cacheKey("tiny", testTreeHash)
	leftover := filepath.Join(c.dir, ".tmp-"+key+"-123")
	if err := os.MkdirAll(filepath.Join(leftover, "rootfs"), 0o700); err != nil {
		t.Fatal(err)
	}
	// A stray entry without its marker, as a hand-made copy would be.
	if err := os.MkdirAll(filepath.Join(c.dir, key, "rootfs"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.lookup("tiny", testTreeHash); ok {
		t.Fatal("an entry without its completion marker is found")
	}
	tree := makeTree(t, "one")
	cfg := template.TreeConfig{Env: []string{"PATH=/usr/bin", "A=b"}, User: "user", Workdir: "/home/user"}
	if err := c.store(ctx, "tiny", testTreeHash, tree, "build-1", cfg); err != nil {
		t.Fatal(err)
	}
	ct, ok := c.lookup("tiny", testTreeHash)
	if !ok {
		t.Fatal("the stored entry is not found")
	}
	if !slices.Equal(ct.Entry.Config.Env, cfg.Env) || ct.Entry.Config.User != "user" || ct.Entry.Config.Workdir != "/home/user" || ct.Entry.BuildID != "build-1" {
		t.Errorf("entry %+v", ct.Entry)
	}
	if inode(t, filepath.Join(ct.Rootfs, "etc/hello")) != inode(t, filepath.Join(tree, "etc/hello")) {
		t.Error("the entry's file is not a hard link to the tree's on one file system")
	}
	if l, err := os.Readlink(filepath.Join(ct.Rootfs, "etc/link")); err != nil || l != "/etc/shadow" {
		t.Errorf("the link was not copied as a link: %q %v", l, err)
	}
	if _, err := os.Stat(leftover); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the leftover of an earlier store is still there: %v", err)
	}
	for _, other := range []struct{ name, hash string }{
		{"tiny", testTreeHash[:63] + "0"}, // same key, other hash
		{"other", testTreeHash},
	} {
		if _, ok := c.lookup(other.name, other.hash); ok {
			t.Errorf("the entry is found as %s %s", other.name, other.hash)
		}
	}
	if err := c.store(ctx, "tiny", testTreeHash, makeTree(t, "two"), "build-2", cfg); err != nil {
		t.Fatal(err)
	}
	ct, _ = c.lookup("tiny", testTreeHash)
	if b, err := os.ReadFile(filepath.Join(ct.Rootfs, "etc/hello")); err != nil || string(b) != "two" || ct.Entry.BuildID != "build-2" {
		t.Errorf("the replaced entry holds %q (%v), build %s", b, err, ct.Entry.BuildID)
	}
	ents, _ := os.ReadDir(c.dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{"." + key + ".lock", key}; !slices.Equal(names, want) {
		t.Errorf("cache directory holds %v, want %v", names, want)
	}
}

// TestBuiltinCacheLock: an exclusive lock keeps out every other, shared ones
// only exclusive ones; a waiter says it waits, once, and gives up with its
// context.
func TestBuiltinCacheLock(t *testing.T) {
	c := newBuiltinCache(t.TempDir())
	take := func(exclusive bool, wait time.Duration) (func(), int, error) {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		waits := 0
		unlock, err := c.lock(ctx, "tiny", testTreeHash, exclusive, func() { waits++ })
		return unlock, waits, err
	}
	cases := []struct {
		name          string
		held, wantsEx bool
		blocked       bool
	}{
		{"exclusive after exclusive", true, true, true},
		{"shared after exclusive", true, false, true},
		{"exclusive after shared", false, true, true},
		{"shared after shared", false, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			unlock, _, err := take(tc.held, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			second, waits, err := take(tc.wantsEx, 3*cacheLockPoll)
			if tc.blocked {
				if !errors.Is(err, context.DeadlineExceeded) || waits != 1 {
					t.Errorf("second lock: %v after %d waiting notices, want a deadline after 1", err, waits)
				}
			} else if err != nil || waits != 0 {
				t.Errorf("second lock: %v after %d waiting notices", err, waits)
			} else {
				second()
			}
			unlock()
			again, waits, err := take(tc.wantsEx, time.Second)
			if err != nil || waits != 0 {
				t.Fatalf("lock after the first is released: %v (%d waits)", err, waits)
			}
			again()
		})
	}
}
