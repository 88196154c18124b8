package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"lelantos.dev/lelantos/internal/template"
)

// Where a version of a built-in template came from, as its "ready" log line
// says.
const (
	fromBuild = "build"
	fromCache = "cache"
)

// newVersion makes a new version of t, whose tree hashes to tree: imported from the
// cache when the cache holds that tree, else built, and the tree then stored in
// the cache for the next data directory. A server that finds another building
// the same tree waits for that build and imports its tree. Without a usable
// cache it builds.
func (b *builtins) newVersion(ctx context.Context, t builtinTemplate, tree string) (*template.Result, string, error) {
	if b.cache == nil {
		res, err := b.build(ctx, t)
		return res, fromBuild, err
	}
	log := b.log.With("template", t.name)
	waiting := func() {
		log.Info("built-in template: waiting for another server's build of the same tree", "cache", b.cache.dir)
	}
	unlock, err := b.cache.lock(ctx, t.name, tree, false, waiting)
	if err != nil {
		if ctx.Err() != nil {
			return nil, "", err
		}
		log.Warn("built-in template: the template cache cannot be used; building without it", "err", err)
		res, err := b.build(ctx, t)
		return res, fromBuild, err
	}
	ct, found := b.cache.lookup(t.name, tree)
	importFailed := false
	if found {
		res, err := b.importTree(ctx, t, ct)
		unlock()
		if err == nil || ctx.Err() != nil {
			return res, fromCache, err
		}
		log.Warn("built-in template: import from the template cache failed; building it", "entry", ct.Dir, "err", err)
		importFailed = true
	} else {
		unlock()
	}
	if unlock, err = b.cache.lock(ctx, t.name, tree, true, waiting); err != nil {
		if ctx.Err() != nil {
			return nil, "", err
		}
		log.Warn("built-in template: the template cache cannot be used; building without it", "err", err)
		res, err := b.build(ctx, t)
		return res, fromBuild, err
	}
	defer unlock()
	// Built meanwhile by the server this one waited for.
	if ct, found := b.cache.lookup(t.name, tree); found && !importFailed {
		res, err := b.importTree(ctx, t, ct)
		if err == nil || ctx.Err() != nil {
			return res, fromCache, err
		}
		log.Warn("built-in template: import from the template cache failed; building it", "entry", ct.Dir, "err", err)
	}
	res, err := b.build(ctx, t)
	if err != nil {
		return nil, "", err
	}
	start := time.Now()
	if err := b.cache.store(ctx, t.name, tree, res.Metadata.Rootfs, res.BuildID, res.Metadata.TreeConfig()); err != nil {
		log.Warn("built-in template: keeping the tree in the template cache failed; the next data directory builds it again", "err", err)
	} else {
		log.Info("built-in template: tree kept in the template cache", "entry", filepath.Join(b.cache.dir, cacheKey(t.name, tree)),
			"took", time.Since(start).Round(time.Millisecond))
	}
	return res, fromBuild, nil
}

// importTree makes a version of t from the cached tree ct: the tree is linked
// (or copied), and only the start command's snapshot is taken.
func (b *builtins) importTree(ctx context.Context, t builtinTemplate, ct *cachedTree) (*template.Result, error) {
	b.log.Info("built-in template: importing the built tree from the template cache", "template", t.name, "entry", ct.Dir)
	return b.builder.Import(ctx, template.ImportRequest{
		Name: t.name, Tree: ct.Rootfs, Config: ct.Entry.Config, CPUCount: t.cpu, MemoryMB: t.memoryMB, DiskSizeMB: t.diskMB,
		StartCmd: t.startCmd, ReadyCmd: t.readyCmd,
	}, &progressLog{log: b.log.With("template", t.name)})
}

// build builds t from its definition, in a build context written under the
// data directory.
func (b *builtins) build(ctx context.Context, t builtinTemplate) (*template.Result, error) {
	dir, err := os.MkdirTemp(b.dataDir, "builtin-"+t.name+"-")
	if err != nil {
		return nil, fmt.Errorf("build template %s: %w", t.name, err)
	}
	defer os.RemoveAll(dir)
	if err := writeDefinition(b.defs.fsys, t, b.caDir, dir); err != nil {
		return nil, fmt.Errorf("build template %s: %w", t.name, err)
	}
	df, err := os.ReadFile(filepath.Join(dir, "Dockerfile"))
	if err != nil {
		return nil, fmt.Errorf("build template %s: %w", t.name, err)
	}
	b.log.Info("built-in template: building (steps whose inputs are unchanged come from the cache)", "template", t.name)
	return b.builder.Build(ctx, template.BuildRequest{
		Name: t.name, Dockerfile: string(df), ContextDir: dir, CPUCount: t.cpu, MemoryMB: t.memoryMB, DiskSizeMB: t.diskMB,
		StartCmd: t.startCmd, ReadyCmd: t.readyCmd,
	}, &progressLog{log: b.log.With("template", t.name)})
}
