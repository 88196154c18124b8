package template

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"lelantos.dev/lelantos/internal/saferoot"
)

// The build cache is the cached layers and the uploaded files of the step
// form. Nothing outside it depends on it: a template version has a tree of
// its own (hard links to the layer's files, which outlive the layer), and a
// running build holds the cache shared (b.layers), so a prune waits for no
// build and never runs during one. What the cache takes on disk is the space
// its removal would free: a file also linked from a version counts for the
// version, not the cache.

// PruneStats is what one PruneCache did.
type PruneStats struct {
	// Bytes is the cache's size before, Freed what the removals freed.
	Bytes, Freed int64
	// Layers and Files count the entries removed.
	Layers, Files int
	// Skipped is set when builds were running, so nothing was done.
	Skipped bool
}

// cacheEntry is one layer or uploaded file of the cache.
type cacheEntry struct {
	path    string
	used    time.Time
	layer   bool
	inodes  []inodeRef // a layer's files
	ownSize int64      // a layer's directories and others, or a file's size
}

type inodeRef struct {
	key   [2]uint64
	links int
}

type inodeInfo struct {
	size  int64
	nlink uint64
	refs  int // links from the cache
}

// PruneCache removes the least recently used layers and uploaded files
// until the cache fits CacheMaxBytes. When builds are running it does
// nothing (Skipped): it is called again after them.
func (b *Builder) PruneCache(ctx context.Context) (PruneStats, error) {
	var st PruneStats
	if b.opts.CacheMaxBytes < 0 {
		return st, nil
	}
	if !b.layers.TryLock() {
		st.Skipped = true
		return st, nil
	}
	defer b.layers.Unlock()
	entries, inodes, err := b.cacheEntries(ctx)
	if err != nil {
		return st, fmt.Errorf("prune the build cache: %w", err)
	}
	for _, e := range entries {
		st.Bytes += e.ownSize
	}
	for _, in := range inodes {
		if uint64(in.refs) >= in.nlink {
			st.Bytes += in.size
		}
	}
	if st.Bytes <= b.opts.CacheMaxBytes {
		return st, nil
	}
	slices.SortFunc(entries, func(a, c *cacheEntry) int { return a.used.Compare(c.used) })
	for _, e := range entries {
		if st.Bytes-st.Freed <= b.opts.CacheMaxBytes {
			break
		}
		if err := ctx.Err(); err != nil {
			return st, err
		}
		var files int64
		for _, r := range e.inodes {
			if in := inodes[r.key]; uint64(in.refs) >= in.nlink && in.refs <= r.links {
				files += in.size
			}
		}
		if len(e.inodes) > 0 && files == 0 {
			continue // its files are a version's or another layer's too: removing it frees nothing
		}
		freed := e.ownSize + files
		for _, r := range e.inodes {
			inodes[r.key].refs -= r.links
		}
		if err := b.removeCacheEntry(e); err != nil {
			return st, fmt.Errorf("prune the build cache: %w", err)
		}
		st.Freed += freed
		if e.layer {
			st.Layers++
		} else {
			st.Files++
		}
	}
	return st, nil
}

// removeCacheEntry moves an entry out of the cache, then removes it.
func (b *Builder) removeCacheEntry(e *cacheEntry) error {
	trash, err := os.MkdirTemp(filepath.Join(b.dir, tmpDir), "prune-")
	if err != nil {
		return err
	}
	defer b.removeTemp(trash)
	return os.Rename(e.path, filepath.Join(trash, "entry"))
}

// cacheEntries lists the cache with what each entry holds.
func (b *Builder) cacheEntries(ctx context.Context) ([]*cacheEntry, map[[2]uint64]*inodeInfo, error) {
	inodes := map[[2]uint64]*inodeInfo{}
	var out []*cacheEntry
	layers, err := os.ReadDir(filepath.Join(b.dir, layersDir))
	if err != nil {
		return nil, nil, err
	}
	for _, l := range layers {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		dir := b.layerDir(l.Name())
		e := &cacheEntry{path: dir, layer: true}
		if fi, err := os.Stat(filepath.Join(dir, layerFile)); err == nil {
			e.used = fi.ModTime()
		}
		if err := e.measure(filepath.Join(dir, "rootfs"), inodes); err != nil {
			return nil, nil, fmt.Errorf("layer %s: %w", l.Name(), err)
		}
		out = append(out, e)
	}
	scopes, err := os.ReadDir(filepath.Join(b.dir, filesDir))
	if err != nil {
		return nil, nil, err
	}
	for _, s := range scopes {
		files, err := os.ReadDir(filepath.Join(b.dir, filesDir, s.Name()))
		if err != nil {
			continue
		}
		for _, f := range files {
			fi, err := f.Info()
			if err != nil || !fi.Mode().IsRegular() {
				continue
			}
			out = append(out, &cacheEntry{path: filepath.Join(b.dir, filesDir, s.Name(), f.Name()), used: fi.ModTime(),
				ownSize: statOf(fi).Blocks * 512})
		}
	}
	return out, inodes, nil
}

// measure walks a layer's tree (untrusted content: through saferoot, links
// not followed) and counts its files by inode.
func (e *cacheEntry) measure(tree string, inodes map[[2]uint64]*inodeInfo) error {
	root, err := saferoot.Open(tree, saferoot.InRoot)
	if err != nil {
		return nil // a broken layer: only its records count
	}
	defer root.Close()
	mine := map[[2]uint64]int{}
	err = root.Walk(".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		st := statOf(fi)
		if fi.IsDir() {
			e.ownSize += st.Blocks * 512
			return nil
		}
		key := [2]uint64{st.Dev, st.Ino}
		in := inodes[key]
		if in == nil {
			in = &inodeInfo{size: st.Blocks * 512, nlink: st.Nlink}
			inodes[key] = in
		}
		in.refs++
		mine[key]++
		return nil
	})
	for k, n := range mine {
		e.inodes = append(e.inodes, inodeRef{key: k, links: n})
	}
	return err
}
