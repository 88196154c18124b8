package template

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"lelantos.dev/lelantos/internal/procfs"
	"lelantos.dev/lelantos/internal/store"
)

// GC removes template versions nothing needs: those that are not their template's
// current build, that no tag names, whose tree no sandbox uses (treeInUse, given a
// version's rootfs path, says whether any sandbox on the node runs from it; nil
// means none does) and that no create was handed within LeaseTime (Lookup), and
// the versions of deleted templates on the same terms. Templates with a build
// running are skipped. It returns the version directories it removed.
func (b *Builder) GC(ctx context.Context, treeInUse func(rootfs string) (bool, error)) ([]string, error) {
	names, err := os.ReadDir(filepath.Join(b.dir, versionsDir))
	if err != nil {
		return nil, fmt.Errorf("collect template versions: %w", err)
	}
	var removed []string
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		unlock, ok := b.tryLockName(n.Name())
		if !ok {
			continue // being built: its newest version is not in the store yet
		}
		r, err := b.gcTemplate(ctx, n.Name(), treeInUse)
		unlock()
		removed = append(removed, r...)
		if err != nil {
			return removed, fmt.Errorf("collect template versions: %w", err)
		}
	}
	return removed, nil
}

func (b *Builder) gcTemplate(ctx context.Context, name string, treeInUse func(string) (bool, error)) ([]string, error) {
	dir := filepath.Join(b.dir, versionsDir, name)
	builds, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	// The current build and the tags are read under tagsMu, which moving
	// either takes.
	b.tagsMu.Lock()
	defer b.tagsMu.Unlock()
	current := ""
	if t, err := b.opts.Store.GetTemplate(ctx, name); err == nil {
		current = t.BuildID
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	keep, err := b.taggedBuilds(name)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range builds {
		if e.Name() == current || keep[e.Name()] {
			continue
		}
		v := filepath.Join(dir, e.Name())
		if treeInUse != nil {
			used, err := treeInUse(filepath.Join(v, "rootfs"))
			if err != nil {
				return removed, err
			}
			if used {
				continue
			}
		}
		trash, err := b.retire(v)
		if err != nil {
			return removed, err
		}
		if trash == "" {
			continue // leased
		}
		if err := os.RemoveAll(trash); err != nil {
			return removed, err
		}
		removed = append(removed, v)
	}
	_ = os.Remove(dir) // only if empty
	return removed, nil
}

// retire moves version v out of the way unless its tree is leased (checked
// and done under b.mu, as Lookup leases), returning where it went ("" when
// leased); the caller removes it.
func (b *Builder) retire(v string) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.leased(filepath.Join(v, "rootfs")) {
		return "", nil
	}
	trash, err := os.MkdirTemp(filepath.Join(b.dir, tmpDir), "gc-")
	if err != nil {
		return "", err
	}
	if err := os.Rename(v, filepath.Join(trash, "version")); err != nil {
		_ = os.Remove(trash)
		return "", err
	}
	return trash, nil
}

// PruneLayers removes cached layers not used for olderThan, waiting for running
// builds to finish first. Template versions do not depend on layers.
func (b *Builder) PruneLayers(ctx context.Context, olderThan time.Duration) (int, error) {
	b.layers.Lock()
	defer b.layers.Unlock()
	ents, err := os.ReadDir(filepath.Join(b.dir, layersDir))
	if err != nil {
		return 0, fmt.Errorf("prune layers: %w", err)
	}
	cutoff := time.Now().Add(-olderThan)
	n := 0
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		dir := b.layerDir(e.Name())
		fi, err := os.Stat(filepath.Join(dir, layerFile))
		if err == nil && fi.ModTime().After(cutoff) {
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			return n, fmt.Errorf("prune layers: %w", err)
		}
		n++
	}
	return n, nil
}

// tryLockName takes the template's lock if it is free.
func (b *Builder) tryLockName(name string) (func(), bool) {
	b.mu.Lock()
	ch := b.names[name]
	if ch == nil {
		ch = make(chan struct{}, 1)
		b.names[name] = ch
	}
	b.mu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, true
	default:
		return nil, false
	}
}

// recover cleans up after a process that stopped during builds: work directories
// (with the overlays mounted in them) go, and builds still marked building fail.
func (b *Builder) recover() error {
	tmp := filepath.Join(b.dir, tmpDir)
	mounts, err := mountsUnder(tmp)
	if err != nil {
		return err
	}
	for _, m := range mounts {
		if err := unmount(m); err != nil {
			return err
		}
	}
	ents, err := os.ReadDir(tmp)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(tmp, e.Name())); err != nil {
			return err
		}
	}
	builds, err := os.ReadDir(filepath.Join(b.dir, buildsDir))
	if err != nil {
		return err
	}
	for _, e := range builds {
		rec, err := b.BuildStatus(e.Name())
		if err != nil || rec.Status != BuildBuilding {
			continue
		}
		now := time.Now().UTC()
		rec.Status, rec.Reason, rec.FinishedAt = BuildError, "interrupted: the builder stopped during the build", &now
		if err := writeJSON(filepath.Join(b.buildDir(rec.BuildID), buildFile), rec); err != nil {
			return err
		}
	}
	return nil
}

// mountsUnder lists the mount points below dir, deepest first.
func mountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := procfs.UnescapeMount(fields[4])
		if strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, sc.Err()
}
