package template

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"lelantos.dev/lelantos/internal/store"
)

// Info is a template as the store has it, with the builder's metadata of its current
// version (nil for a template the builder did not build, such as base).
type Info struct {
	Template *store.Template
	Metadata *Metadata
}

// Lookup returns what the control plane needs to create a sandbox of the template
// (by name or alias): its current version's tree, default user and working
// directory, environment, start command and snapshot. A template the builder did not
// build gets metadata made from its store record.
//
// The version's tree is leased for BuilderOptions.LeaseTime: GC keeps it
// meanwhile, since the sandbox that will run on it is not on the node yet.
func (b *Builder) Lookup(ctx context.Context, name string) (*Metadata, error) {
	return b.LookupBuild(ctx, name, "")
}

// DefaultLeaseTime is how long GC keeps a version Lookup handed out: longer
// than a create takes to put its sandbox on the node.
const DefaultLeaseTime = 5 * time.Minute

// LookupBuild is Lookup of one build of the template ("" for the current
// one), e.g. the one a tag names.
func (b *Builder) LookupBuild(ctx context.Context, name, buildID string) (*Metadata, error) {
	t, err := b.opts.Store.GetTemplate(ctx, name)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("look up template %s: %w", name, ErrNotFound)
		}
		return nil, fmt.Errorf("look up template %s: %w", name, err)
	}
	// Against GC, which retires versions under both (in this order).
	b.tagsMu.Lock()
	defer b.tagsMu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	if buildID != "" && buildID != t.BuildID {
		var m Metadata
		err := readJSON(filepath.Join(b.versionDir(t.ID, buildID), metadataFile), &m)
		switch {
		case err == nil:
			b.leases[filepath.Clean(m.Rootfs)] = time.Now()
			return &m, nil
		case !errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("look up template %s build %s: %w", name, buildID, err)
		}
		// Gone: superseded by the current build (a rebuild after the caller
		// read the store), unless a tag names it.
		tagged, terr := b.taggedBuilds(t.ID)
		if terr != nil {
			return nil, fmt.Errorf("look up template %s build %s: %w", name, buildID, terr)
		}
		if tagged[buildID] {
			return nil, fmt.Errorf("look up template %s build %s: %w", name, buildID, ErrNotFound)
		}
	}
	m, err := b.metadataOf(t)
	if err != nil {
		return nil, fmt.Errorf("look up template %s: %w", name, err)
	}
	if m.Rootfs != "" {
		b.leases[filepath.Clean(m.Rootfs)] = time.Now()
	}
	return m, nil
}

// leased reports whether the tree was handed out within the lease time, under
// b.mu.
func (b *Builder) leased(rootfs string) bool {
	at, ok := b.leases[filepath.Clean(rootfs)]
	if ok && time.Since(at) > b.opts.LeaseTime {
		delete(b.leases, filepath.Clean(rootfs))
		return false
	}
	return ok
}

// metadataOf reads the metadata of the template's current version.
func (b *Builder) metadataOf(t *store.Template) (*Metadata, error) {
	var m Metadata
	err := readJSON(filepath.Join(b.versionDir(t.ID, t.BuildID), metadataFile), &m)
	if errors.Is(err, fs.ErrNotExist) {
		return &Metadata{Name: t.ID, BuildID: t.BuildID, Rootfs: t.RootfsPath, StartCmd: t.StartCmd, ReadyCmd: t.ReadyCmd,
			CPUCount: t.CPUCount, MemoryMB: t.MemoryMB, DiskSizeMB: t.DiskSizeMB, CreatedAt: t.CreatedAt}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("metadata of %s build %s: %w", t.ID, t.BuildID, err)
	}
	return &m, nil
}

// Get returns one template by name or alias.
func (b *Builder) Get(ctx context.Context, name string) (*Info, error) {
	t, err := b.opts.Store.GetTemplate(ctx, name)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("get template %s: %w", name, ErrNotFound)
		}
		return nil, fmt.Errorf("get template %s: %w", name, err)
	}
	return b.info(t), nil
}

// List returns every template, ordered by name.
func (b *Builder) List(ctx context.Context) ([]*Info, error) {
	ts, err := b.opts.Store.ListTemplates(ctx)
	if err != nil {
		return nil, fmt.Errorf("list templates: %w", err)
	}
	out := make([]*Info, 0, len(ts))
	for _, t := range ts {
		out = append(out, b.info(t))
	}
	return out, nil
}

func (b *Builder) info(t *store.Template) *Info {
	i := &Info{Template: t}
	var m Metadata
	if readJSON(filepath.Join(b.versionDir(t.ID, t.BuildID), metadataFile), &m) == nil {
		i.Metadata = &m
	}
	return i
}
