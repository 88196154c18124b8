package template

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"lelantos.dev/lelantos/internal/saferoot"
)

// copier writes sources of the context src into a tree that shares files with its
// parent: it replaces entries, never writes into one.
type copier struct {
	src, tree *saferoot.Root
	owner     *owner       // --chown; nil means root
	mode      *fs.FileMode // --chmod
	log       *buildLog
	limits    saferoot.Limits
}

func (c *copier) own() owner {
	if c.owner != nil {
		return *c.owner
	}
	return owner{}
}

// copySource copies one source to dest; with unpack (ADD), a tar archive is
// unpacked into dest instead.
func (c *copier) copySource(ctx context.Context, s copySource, dest string, destDir, unpack bool) error {
	if unpack && !s.dir {
		if done, err := c.addArchive(ctx, s, dest); done || err != nil {
			return err
		}
	}
	if s.dir {
		if err := c.tree.MkdirAll(dest, 0o755, c.own()); err != nil {
			return err
		}
		for _, e := range s.entries {
			if err := c.place(e, path.Join(dest, e.rel)); err != nil {
				return err
			}
		}
		return nil
	}
	parent, name := path.Dir(dest), path.Base(dest)
	if destDir || isDirIn(c.tree, dest) {
		parent, name = dest, path.Base(s.rel)
	}
	if err := c.tree.MkdirAll(parent, 0o755, c.own()); err != nil {
		return err
	}
	return c.place(s.entries[0], path.Join(parent, name))
}

// addArchive unpacks the source into dest when it is a tar archive, within the
// builder's limits, and reports whether it was one.
func (c *copier) addArchive(ctx context.Context, s copySource, dest string) (bool, error) {
	f, err := c.src.Open(s.entries[0].name)
	if err != nil {
		return false, err
	}
	defer f.Close()
	ok, err := saferoot.SniffTar(f)
	if err != nil {
		return false, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if !ok {
		return false, nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return false, err
	}
	if err := c.tree.MkdirAll(dest, 0o755, c.own()); err != nil {
		return false, err
	}
	st, err := c.tree.Extract(ctx, f, dest, saferoot.ExtractOptions{Owner: c.owner, Limits: c.limits})
	if errors.Is(err, saferoot.ErrTooLarge) || errors.Is(err, saferoot.ErrCompression) {
		return true, fmt.Errorf("%w: unpack: %w", ErrInvalid, err)
	}
	if err != nil {
		return true, fmt.Errorf("unpack: %w", err)
	}
	if st.Devices > 0 {
		c.log.infof("warning: skipped %d device files of the archive", st.Devices)
	}
	return true, nil
}

// place puts one entry at target, a path in the tree.
func (c *copier) place(e copyEntry, target string) error {
	o := c.own()
	perm := e.info.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	if c.mode != nil {
		perm = *c.mode
	}
	old, oerr := c.tree.Lstat(target)
	switch {
	case e.info.IsDir():
		if oerr == nil && old.IsDir() {
			if c.owner != nil {
				return c.tree.Lchown(target, o.UID, o.GID)
			}
			return nil
		}
		if err := c.tree.RemoveAll(target); err != nil {
			return err
		}
		if err := c.tree.Mkdir(target, 0o700); err != nil {
			return err
		}
	case oerr == nil && old.IsDir():
		return fmt.Errorf("cannot replace directory %s with a file", target)
	case e.info.Mode()&fs.ModeSymlink != 0:
		if err := c.tree.RemoveAll(target); err != nil {
			return err
		}
		if err := c.tree.Symlink(e.link, target); err != nil {
			return err
		}
		return c.tree.Lchown(target, o.UID, o.GID)
	case e.info.Mode().IsRegular():
		if err := c.tree.RemoveAll(target); err != nil {
			return err
		}
		if err := copyFile(c.src, e.name, c.tree, target); err != nil {
			return err
		}
	default:
		c.log.infof("warning: skipping %s: not a file, directory or link", e.name)
		return nil
	}
	if err := c.tree.Lchown(target, o.UID, o.GID); err != nil {
		return err
	}
	if err := c.tree.Chmod(target, perm); err != nil {
		return err
	}
	return c.tree.Lchtimes(target, e.info.ModTime(), e.info.ModTime())
}

// writeInline writes a heredoc source of COPY: at dest, or in it when
// intoDir, named after the heredoc.
func (c *copier) writeInline(content instructions.SourceContent, dest string, intoDir bool) error {
	target := dest
	if intoDir || isDirIn(c.tree, dest) {
		target = path.Join(dest, path.Base(content.Path))
	}
	if err := c.tree.MkdirAll(path.Dir(target), 0o755, c.own()); err != nil {
		return err
	}
	if fi, err := c.tree.Lstat(target); err == nil && fi.IsDir() {
		return fmt.Errorf("cannot replace directory %s with a file", target)
	}
	if err := c.tree.RemoveAll(target); err != nil {
		return err
	}
	perm := fs.FileMode(0o644)
	if c.mode != nil {
		perm = *c.mode
	}
	if err := c.tree.WriteFile(target, []byte(content.Data), 0o600); err != nil {
		return err
	}
	o := c.own()
	if err := c.tree.Lchown(target, o.UID, o.GID); err != nil {
		return err
	}
	return c.tree.Chmod(target, perm)
}
