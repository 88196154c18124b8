package artifact

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// removingSuffix ends the name a pruned entry has while it is removed.
const removingSuffix = ".removing"

// Prune removes the fetched trees that no sandbox needs: those not in inUse
// (paths as Tree returns them) and not asked for within idle, and fetches
// that a crash left half done and older than idle. A tree handed out by Tree
// counts as asked for then, so a create that holds its path and has not yet
// reached the engine keeps it for idle at least. Trees the node adopted are
// never removed. It returns the trees it removed.
func (c *Cache) Prune(ctx context.Context, inUse []string, idle time.Duration) ([]string, error) {
	ents, err := os.ReadDir(c.dir)
	if err != nil {
		return nil, fmt.Errorf("prune fetched trees: %w", err)
	}
	cutoff := time.Now().Add(-idle)
	var removed []string
	for _, ent := range ents {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		if !ent.IsDir() {
			continue
		}
		if strings.HasPrefix(ent.Name(), ".") {
			if strings.HasSuffix(ent.Name(), removingSuffix) { // an earlier prune's, cut short
				if err := os.RemoveAll(filepath.Join(c.dir, ent.Name())); err != nil {
					return removed, fmt.Errorf("prune fetched trees: %w", err)
				}
			}
			continue
		}
		gone, err := c.pruneEntry(filepath.Join(c.dir, ent.Name()), inUse, cutoff)
		if err != nil {
			return removed, fmt.Errorf("prune fetched trees: %w", err)
		}
		if gone != "" {
			removed = append(removed, gone)
		}
	}
	return removed, nil
}

// pruneEntry prunes one DIR/<hex>: its half-done fetches older than cutoff,
// then its tree when neither used nor asked for since cutoff (returned); the
// entry's time is when its tree was last asked for (Cache.touch).
func (c *Cache) pruneEntry(entry string, inUse []string, cutoff time.Time) (string, error) {
	parts, err := os.ReadDir(entry)
	if err != nil {
		return "", err
	}
	for _, p := range parts {
		if !strings.HasPrefix(p.Name(), "partial-") {
			continue
		}
		if fi, err := p.Info(); err == nil && fi.ModTime().Before(cutoff) {
			if err := os.RemoveAll(filepath.Join(entry, p.Name())); err != nil {
				return "", err
			}
		}
	}
	tree := filepath.Join(entry, "tree")
	// Under c.mu, so that Tree cannot hand the tree out between the check
	// and its move out of the way.
	c.mu.Lock()
	if _, err := os.Lstat(tree); err != nil {
		c.mu.Unlock()
		if !os.IsNotExist(err) {
			return "", err
		}
		_ = os.Remove(entry) // only if empty
		return "", nil
	}
	fi, err := os.Stat(entry)
	if err != nil || fi.ModTime().After(cutoff) || slices.Contains(inUse, tree) {
		c.mu.Unlock()
		return "", err
	}
	trash := filepath.Join(c.dir, "."+filepath.Base(entry)+removingSuffix)
	err = os.Rename(entry, trash)
	c.mu.Unlock()
	if err != nil {
		return "", err
	}
	if err := os.RemoveAll(trash); err != nil {
		return "", err
	}
	return tree, nil
}
