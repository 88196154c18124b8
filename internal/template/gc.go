package template

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// GC removes template versions nothing needs: those that are not their template's
// current build and whose tree no sandbox uses (treeInUse, given a version's rootfs
// path, says whether any sandbox on the node runs from it; nil means none does), and
// the versions of deleted templates. Templates with a build running are skipped. It
// returns the version directories it removed.
func (b *Builder) GC(ctx context.Context, treeInUse func(rootfs string) (bool, error)) ([]string, error) {
	ts, err := b.opts.Store.ListTemplates(ctx)
	if err != nil {
		return nil, fmt.Errorf("collect template versions: %w", err)
	}
	current := map[string]string{}
	for _, t := range ts {
		current[t.ID] = t.BuildID
	}
	names, err := os.ReadDir(filepath.Join(b.dir, versionsDir))
	if err != nil {
		return nil, fmt.Errorf("collect template versions: %w", err)
	}
	var removed []string
	for _, n := range names {
		unlock, ok := b.tryLockName(n.Name())
		if !ok {
			continue // being built: its newest version is not in the store yet
		}
		r, err := b.gcTemplate(n.Name(), current[n.Name()], treeInUse)
		unlock()
		removed = append(removed, r...)
		if err != nil {
			return removed, fmt.Errorf("collect template versions: %w", err)
		}
	}
	return removed, nil
}

func (b *Builder) gcTemplate(name, current string, treeInUse func(string) (bool, error)) ([]string, error) {
	dir := filepath.Join(b.dir, versionsDir, name)
	builds, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range builds {
		if e.Name() == current {
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
		if err := os.RemoveAll(v); err != nil {
			return removed, err
		}
		removed = append(removed, v)
	}
	_ = os.Remove(dir) // only if empty
	return removed, nil
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
		mp := unescapeMount(fields[4])
		if strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, sc.Err()
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
