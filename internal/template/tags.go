package template

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"lelantos.dev/lelantos/internal/store"
)

// DefaultTag names a template's current build: the one its name alone means.
const DefaultTag = "default"

// Tag points a name:tag at one build (version) of a template.
type Tag struct {
	Tag       string    `json:"tag"`
	BuildID   string    `json:"buildID"`
	CreatedAt time.Time `json:"createdAt"`
}

// tagsDir holds each template's tags other than DefaultTag, as
// <data>/templates/tags/<name>.json; DefaultTag is the store's current build.
const tagsDir = "tags"

func (b *Builder) tagsFile(name string) string { return filepath.Join(b.dir, tagsDir, name+".json") }

// readTags reads a template's tags other than DefaultTag.
func (b *Builder) readTags(name string) ([]Tag, error) {
	var tags []Tag
	err := readJSON(b.tagsFile(name), &tags)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("tags of template %s: %w", name, err)
	}
	return tags, nil
}

func (b *Builder) writeTags(name string, tags []Tag) error {
	if err := os.MkdirAll(filepath.Join(b.dir, tagsDir), 0o700); err != nil {
		return err
	}
	if len(tags) == 0 {
		if err := os.Remove(b.tagsFile(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	slices.SortFunc(tags, func(a, c Tag) int { return cmpString(a.Tag, c.Tag) })
	return writeJSON(b.tagsFile(name), tags)
}

func cmpString(a, c string) int {
	switch {
	case a < c:
		return -1
	case a > c:
		return 1
	}
	return 0
}

// Tags returns a template's tags, DefaultTag (its current build) first.
func (b *Builder) Tags(ctx context.Context, name string) ([]Tag, error) {
	t, err := b.opts.Store.GetTemplate(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("tags of template %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("tags of template %s: %w", name, err)
	}
	b.tagsMu.Lock()
	defer b.tagsMu.Unlock()
	others, err := b.readTags(t.ID)
	if err != nil {
		return nil, err
	}
	return append([]Tag{{Tag: DefaultTag, BuildID: t.BuildID, CreatedAt: t.UpdatedAt}}, others...), nil
}

// tagged sets tags of template name to buildID, under tagsMu; DefaultTag is
// left to the caller.
func (b *Builder) tagged(name, buildID string, tags []string) error {
	cur, err := b.readTags(name)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	for _, tag := range tags {
		if tag == DefaultTag {
			continue
		}
		cur = slices.DeleteFunc(cur, func(x Tag) bool { return x.Tag == tag })
		cur = append(cur, Tag{Tag: tag, BuildID: buildID, CreatedAt: now})
	}
	return b.writeTags(name, cur)
}

// AssignTags points tags of template name at its build buildID, which must
// be a version the builder keeps. DefaultTag makes that build the current
// one.
func (b *Builder) AssignTags(ctx context.Context, name, buildID string, tags []string) error {
	for _, tag := range tags {
		if !tagRE.MatchString(tag) {
			return fmt.Errorf("tag template %s: %w: tag %q must be 1-128 of a-z, 0-9, '.', '-' and '_'", name, ErrInvalid, tag)
		}
	}
	t, err := b.opts.Store.GetTemplate(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("tag template %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("tag template %s: %w", name, err)
	}
	b.tagsMu.Lock()
	defer b.tagsMu.Unlock()
	var meta Metadata
	if err := readJSON(filepath.Join(b.versionDir(t.ID, buildID), metadataFile), &meta); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("tag template %s: build %s: %w", name, buildID, ErrNotFound)
		}
		return fmt.Errorf("tag template %s: %w", name, err)
	}
	if slices.Contains(tags, DefaultTag) && t.BuildID != buildID {
		t.BuildID, t.RootfsPath, t.StartCmd, t.ReadyCmd = buildID, meta.Rootfs, meta.StartCmd, meta.ReadyCmd
		t.CPUCount, t.MemoryMB, t.DiskSizeMB = meta.CPUCount, meta.MemoryMB, meta.DiskSizeMB
		if err := b.opts.Store.PutTemplate(ctx, t); err != nil {
			return fmt.Errorf("tag template %s: %w", name, err)
		}
	}
	if err := b.tagged(t.ID, buildID, tags); err != nil {
		return fmt.Errorf("tag template %s: %w", name, err)
	}
	return nil
}

// RemoveTags removes tags of template name; DefaultTag cannot be removed,
// and a tag it does not have is ErrNotFound.
func (b *Builder) RemoveTags(ctx context.Context, name string, tags []string) error {
	t, err := b.opts.Store.GetTemplate(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("untag template %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("untag template %s: %w", name, err)
	}
	b.tagsMu.Lock()
	defer b.tagsMu.Unlock()
	cur, err := b.readTags(t.ID)
	if err != nil {
		return err
	}
	for _, tag := range tags {
		if tag == DefaultTag {
			return fmt.Errorf("untag template %s: %w: the %s tag cannot be removed", name, ErrInvalid, DefaultTag)
		}
		i := slices.IndexFunc(cur, func(x Tag) bool { return x.Tag == tag })
		if i < 0 {
			return fmt.Errorf("untag template %s: tag %q: %w", name, tag, ErrNotFound)
		}
		cur = slices.Delete(cur, i, i+1)
	}
	if err := b.writeTags(t.ID, cur); err != nil {
		return fmt.Errorf("untag template %s: %w", name, err)
	}
	return nil
}

// taggedBuilds are the builds of template name its tags keep, under tagsMu.
func (b *Builder) taggedBuilds(name string) (map[string]bool, error) {
	tags, err := b.readTags(name)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, t := range tags {
		out[t.BuildID] = true
	}
	return out, nil
}
