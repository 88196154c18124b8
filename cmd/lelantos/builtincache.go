package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"lelantos.dev/lelantos/internal/template"
)

// builtinCache keeps the built trees of built-in templates in one directory,
// <cache dir>/templates, shared by every server and data directory of the
// machine, as scripts/build-base.sh keeps the base template's. An entry,
// <name>-<tree hash>/, holds rootfs/ (the tree its Dockerfile's steps made),
// entry.json (the tree's image configuration and full hash) and
// .lelantos-complete, written last. An entry is made in a temporary directory
// beside it and renamed into place, so it is there complete or not at all.
// The file .<name>-<tree hash>.lock is locked (flock) exclusively by the
// server that builds or replaces the entry, and shared by those importing it:
// servers building the same tree at once share one build, and a crashed
// server's lock goes with it.
type builtinCache struct {
	dir string
}

// cacheLockPoll is how often a server waiting for an entry's lock tries it again.
const cacheLockPoll = 250 * time.Millisecond

// cacheComplete is the entry's completion marker, holding the tree hash.
const cacheComplete = ".lelantos-complete"

// cachedTree is a complete entry of the cache.
type cachedTree struct {
	// Dir is the entry; Rootfs its tree.
	Dir, Rootfs string
	Entry       cacheEntry
}

// cacheEntry is an entry's entry.json.
type cacheEntry struct {
	Template string              `json:"template"`
	Hash     string              `json:"hash"`
	Config   template.TreeConfig `json:"config"`
	// BuildID is the build that made the tree, in the data directory of
	// the server that built it.
	BuildID string    `json:"buildID,omitempty"`
	BuiltAt time.Time `json:"builtAt"`
}

// newBuiltinCache is the cache of built-in templates under cacheDir.
func newBuiltinCache(cacheDir string) *builtinCache {
	return &builtinCache{dir: filepath.Join(cacheDir, "templates")}
}

// cacheKey names the entry of template name's tree hash.
func cacheKey(name, hash string) string { return name + "-" + hash[:min(len(hash), 16)] }

// lookup returns the complete entry of name's tree hash, if there is one.
func (c *builtinCache) lookup(name, hash string) (*cachedTree, bool) {
	dir := filepath.Join(c.dir, cacheKey(name, hash))
	marker, err := os.ReadFile(filepath.Join(dir, cacheComplete))
	if err != nil || strings.TrimSpace(string(marker)) != hash {
		return nil, false
	}
	data, err := os.ReadFile(filepath.Join(dir, "entry.json"))
	if err != nil {
		return nil, false
	}
	var e cacheEntry
	if json.Unmarshal(data, &e) != nil || e.Hash != hash || e.Template != name {
		return nil, false
	}
	root := filepath.Join(dir, "rootfs")
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		return nil, false
	}
	return &cachedTree{Dir: dir, Rootfs: root, Entry: e}, true
}

// lock takes the lock of name's tree hash, exclusive or shared, waiting while
// another holder's lock excludes it (calling waiting once, if it must wait)
// until ctx ends. The lock lasts until the returned function is called or
// the process ends.
func (c *builtinCache) lock(ctx context.Context, name, hash string, exclusive bool, waiting func()) (func(), error) {
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return nil, fmt.Errorf("template cache %s: %w", c.dir, err)
	}
	p := filepath.Join(c.dir, "."+cacheKey(name, hash)+".lock")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("template cache lock: %w", err)
	}
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	for waited := false; ; {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if err == nil {
			return func() {
				_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
				_ = f.Close()
			}, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			_ = f.Close()
			return nil, fmt.Errorf("template cache lock %s: %w", p, err)
		}
		if !waited && waiting != nil {
			waiting()
		}
		waited = true
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, ctx.Err()
		case <-time.After(cacheLockPoll):
		}
	}
}

// store makes tree, with its configuration, the entry of name's tree hash,
// replacing an entry there. The caller holds the entry's lock exclusively.
func (c *builtinCache) store(ctx context.Context, name, hash, tree, buildID string, cfg template.TreeConfig) (err error) {
	key := cacheKey(name, hash)
	c.removeLeftovers(key)
	tmp, err := os.MkdirTemp(c.dir, ".tmp-"+key+"-")
	if err != nil {
		return fmt.Errorf("template cache: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(tmp)
		}
	}()
	if err := template.CopyTree(ctx, tree, filepath.Join(tmp, "rootfs")); err != nil {
		return fmt.Errorf("template cache: %w", err)
	}
	data, err := json.MarshalIndent(cacheEntry{Template: name, Hash: hash, Config: cfg, BuildID: buildID, BuiltAt: time.Now().UTC()}, "", "  ")
	if err != nil {
		return fmt.Errorf("template cache: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "entry.json"), data, 0o600); err != nil {
		return fmt.Errorf("template cache: %w", err)
	}
	// The tree and its configuration are on disk before the marker says so.
	if err := syncDir(tmp); err != nil {
		return fmt.Errorf("template cache: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, cacheComplete), []byte(hash+"\n"), 0o600); err != nil {
		return fmt.Errorf("template cache: %w", err)
	}
	dst := filepath.Join(c.dir, key)
	if _, err := os.Lstat(dst); err == nil {
		old, err := os.MkdirTemp(c.dir, ".old-"+key+"-")
		if err != nil {
			return fmt.Errorf("template cache: %w", err)
		}
		if err := os.Rename(dst, filepath.Join(old, "entry")); err != nil {
			return fmt.Errorf("template cache: replace %s: %w", dst, err)
		}
		defer os.RemoveAll(old)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("template cache: %w", err)
	}
	if err := syncDir(c.dir); err != nil {
		return fmt.Errorf("template cache: %w", err)
	}
	return nil
}

// removeLeftovers removes what servers that stopped while storing or
// replacing the entry key left; the caller holds its lock exclusively.
func (c *builtinCache) removeLeftovers(key string) {
	for _, prefix := range []string{".tmp-", ".old-"} {
		ms, _ := filepath.Glob(filepath.Join(c.dir, prefix+key+"-*"))
		for _, m := range ms {
			_ = os.RemoveAll(m)
		}
	}
}

// syncDir flushes the file system holding dir.
func syncDir(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return &fs.PathError{Op: "syncfs", Path: dir, Err: err}
	}
	return nil
}
