package engine

import (
	"fmt"
	"path/filepath"
	"slices"
)

// TreesInUse lists the template trees (Spec.RootfsPath, cleaned, sorted,
// without repeats) that something on the node runs from or will start from:
// its sandboxes that are not dead (paused ones resume on their tree), its
// pooled sandboxes and the pools it keeps or refills, and its snapshots
// (their sandboxes start on their source's tree). A tree not listed may be
// removed, as far as the engine is concerned; a create that was handed a tree
// and has not reached the engine yet is the caller's to account for.
func (e *Engine) TreesInUse() ([]string, error) {
	var out []string
	add := func(p string) {
		if p != "" {
			out = append(out, filepath.Clean(p))
		}
	}
	// Records are read after e.mu is given back, as List reads them.
	e.mu.Lock()
	boxes := make([]*box, 0, len(e.boxes))
	for _, b := range e.boxes {
		boxes = append(boxes, b)
	}
	for _, pool := range e.warm {
		boxes = append(boxes, pool...)
	}
	for _, d := range e.demand {
		add(d.spec.RootfsPath)
	}
	for _, p := range e.opts.Warm {
		add(p.Spec.RootfsPath)
	}
	e.mu.Unlock()
	for _, b := range boxes {
		if r := b.record(); r.State != StateDead {
			add(r.Spec.RootfsPath)
		}
	}
	snaps, err := e.Snapshots()
	if err != nil {
		return nil, fmt.Errorf("trees in use: %w", err)
	}
	for _, s := range snaps {
		add(s.RootfsPath)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}
