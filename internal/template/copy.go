package template

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// copySource is one source of COPY or ADD after wildcard expansion.
type copySource struct {
	rel  string // path in the context
	host string // resolved host path
	dir  bool
	// entries are, for a directory, its contents (parents first); for a file, the
	// file itself with rel "".
	entries []copyEntry
}

// copyEntry is one file, directory or link to copy.
type copyEntry struct {
	rel  string // relative to the source directory
	host string
	info fs.FileInfo
	link string // symbolic link target
}

// copyStep runs COPY or ADD.
func (b *Builder) copyStep(ctx context.Context, st *buildState, in Instruction) error {
	lx := st.lexer()
	words := slices.Clone(in.JSON)
	if words == nil {
		var err error
		if words, err = lx.words(in.Args); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	} else {
		for i, w := range words {
			x, err := lx.word(w)
			if err != nil {
				return fmt.Errorf("%w: %v", ErrInvalid, err)
			}
			words[i] = x
		}
	}
	if len(words) < 2 {
		return fmt.Errorf("%w: %s needs at least one source and a destination", ErrInvalid, in.Cmd)
	}
	srcs, dest := words[:len(words)-1], words[len(words)-1]
	for _, s := range srcs {
		if strings.Contains(s, "://") || strings.HasPrefix(s, "git@") {
			return fmt.Errorf("%w: %s of a URL (%s) is not supported: the builder does not download; fetch it in a RUN step (e.g. curl -fsSLo) or put it in the build context", ErrInvalid, in.Cmd, s)
		}
	}
	chown, err := lx.word(in.Flags["chown"])
	if err != nil {
		return fmt.Errorf("%w: --chown: %v", ErrInvalid, err)
	}
	var mode *fs.FileMode
	if m := in.Flags["chmod"]; m != "" {
		n, err := strconv.ParseUint(m, 8, 32)
		if err != nil || n > 0o7777 {
			return fmt.Errorf("%w: --chmod=%s is not an octal mode", ErrInvalid, m)
		}
		fm := fs.FileMode(n)
		mode = &fm
	}
	if st.req.ContextDir == "" {
		return fmt.Errorf("%w: %s needs a build context, and the build has none", ErrInvalid, in.Cmd)
	}
	sources, err := collectSources(st.req.ContextDir, srcs)
	if err != nil {
		return err
	}
	destDir := strings.HasSuffix(dest, "/") || dest == "." || strings.HasSuffix(dest, "/.")
	if !path.IsAbs(dest) {
		dest = path.Join(st.cwd(), dest)
	}
	dest = path.Clean(dest)
	if len(sources) > 1 && !destDir && !isDirIn(st.rootfs, dest) {
		return fmt.Errorf("%w: when copying several sources the destination %s must be a directory ending in /", ErrInvalid, dest)
	}
	sum, err := contentHash(sources)
	if err != nil {
		return err
	}
	text := fmt.Sprintf("%s chown=%s chmod=%s dest=%s dir=%t content=%s", in.Cmd, chown, in.Flags["chmod"], dest, destDir, sum)
	return b.fsStep(ctx, st, text, func(tmp string) (string, error) {
		tree, err := b.childTree(ctx, st.rootfs, tmp)
		if err != nil {
			return "", err
		}
		c := copier{tree: tree, mode: mode, log: st.log}
		if chown != "" {
			a, err := lookupUser(tree, chown)
			if err != nil {
				return "", err
			}
			c.owner = &owner{UID: a.UID, GID: a.GID}
		}
		for _, s := range sources {
			if err := c.copySource(s, dest, destDir, in.Cmd == "ADD"); err != nil {
				return "", fmt.Errorf("%s %s: %w", in.Cmd, s.rel, err)
			}
		}
		return tree, nil
	})
}

// collectSources finds the sources in the context, expanding wildcards and leaving
// out what .dockerignore excludes.
func collectSources(contextDir string, patterns []string) ([]copySource, error) {
	ig, err := loadIgnore(contextDir)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	var rels []string
	for _, p := range patterns {
		p = strings.TrimPrefix(path.Clean("/"+p), "/")
		if !strings.ContainsAny(p, "*?[") {
			rels = append(rels, p)
			continue
		}
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("%w: bad pattern %q", ErrInvalid, p)
		}
		var matched []string
		err := filepath.WalkDir(contextDir, func(h string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(contextDir, h)
			if ok, _ := path.Match(p, filepath.ToSlash(rel)); ok && !ig.excluded(rel) {
				matched = append(matched, filepath.ToSlash(rel))
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		if len(matched) == 0 {
			return nil, fmt.Errorf("%w: no file in the build context matches %s", ErrInvalid, p)
		}
		rels = append(rels, matched...)
	}
	var out []copySource
	for _, rel := range rels {
		s, err := collectOne(contextDir, rel, ig)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func collectOne(contextDir, rel string, ig ignorer) (copySource, error) {
	notFound := fmt.Errorf("%w: %s not found in the build context", ErrInvalid, "/"+rel)
	if ig.excluded(rel) {
		return copySource{}, notFound
	}
	host, err := resolveIn(contextDir, rel, true)
	if err != nil {
		return copySource{}, fmt.Errorf("%w: %s: %v", ErrInvalid, rel, err)
	}
	fi, err := os.Lstat(host)
	if err != nil {
		return copySource{}, notFound
	}
	s := copySource{rel: rel, host: host, dir: fi.IsDir()}
	if !s.dir {
		s.entries = []copyEntry{{host: host, info: fi}}
		return s, nil
	}
	err = filepath.WalkDir(host, func(h string, d fs.DirEntry, err error) error {
		if err != nil || h == host {
			return err
		}
		inContext, _ := filepath.Rel(contextDir, h)
		if ig.excluded(inContext) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		e := copyEntry{host: h, info: info}
		e.rel, _ = filepath.Rel(host, h)
		if info.Mode()&fs.ModeSymlink != 0 {
			if e.link, err = os.Readlink(h); err != nil {
				return err
			}
		}
		s.entries = append(s.entries, e)
		return nil
	})
	if err != nil {
		return copySource{}, fmt.Errorf("%w: %s: %v", ErrInvalid, rel, err)
	}
	return s, nil
}

// contentHash hashes what the sources would copy: names, types, modes, link targets
// and file contents (not times or owners, which COPY does not keep).
func contentHash(sources []copySource) (string, error) {
	h := sha256.New()
	for _, s := range sources {
		fmt.Fprintf(h, "source %q dir=%t\n", s.rel, s.dir)
		for _, e := range s.entries {
			fmt.Fprintf(h, "%q %o %q %d\n", e.rel, e.info.Mode(), e.link, e.info.Size())
			if !e.info.Mode().IsRegular() {
				continue
			}
			f, err := os.Open(e.host)
			if err != nil {
				return "", fmt.Errorf("hash %s: %w", e.host, err)
			}
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return "", fmt.Errorf("hash %s: %w", e.host, err)
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// copier writes sources into a tree that shares files with its parent: it replaces
// entries, never writes into one.
type copier struct {
	tree  string
	owner *owner       // --chown; nil means root
	mode  *fs.FileMode // --chmod
	log   *buildLog
}

func (c *copier) own() owner {
	if c.owner != nil {
		return *c.owner
	}
	return owner{}
}

func (c *copier) copySource(s copySource, dest string, destDir, add bool) error {
	if add && !s.dir {
		if ok, err := isArchive(s.host); err != nil {
			return err
		} else if ok {
			dir, err := mkdirAllIn(c.tree, dest, 0o755, c.own())
			if err != nil {
				return err
			}
			return extractFile(s.host, c.tree, dir, extractOptions{chown: c.owner, log: c.log})
		}
	}
	if s.dir {
		if _, err := mkdirAllIn(c.tree, dest, 0o755, c.own()); err != nil {
			return err
		}
		for _, e := range s.entries {
			parent, err := resolveIn(c.tree, path.Join(dest, path.Dir(filepath.ToSlash(e.rel))), true)
			if err != nil {
				return err
			}
			if err := c.place(e, filepath.Join(parent, filepath.Base(e.rel))); err != nil {
				return err
			}
		}
		return nil
	}
	parent, name := path.Dir(dest), path.Base(dest)
	if destDir || isDirIn(c.tree, dest) {
		parent, name = dest, path.Base(s.rel)
	}
	dir, err := mkdirAllIn(c.tree, parent, 0o755, c.own())
	if err != nil {
		return err
	}
	return c.place(s.entries[0], filepath.Join(dir, name))
}

// place puts one entry at the host path target.
func (c *copier) place(e copyEntry, target string) error {
	o := c.own()
	perm := uint32(e.info.Mode().Perm())
	if e.info.Mode()&fs.ModeSetuid != 0 {
		perm |= unix.S_ISUID
	}
	if e.info.Mode()&fs.ModeSetgid != 0 {
		perm |= unix.S_ISGID
	}
	if e.info.Mode()&fs.ModeSticky != 0 {
		perm |= unix.S_ISVTX
	}
	if c.mode != nil {
		perm = uint32(*c.mode)
	}
	old, oerr := os.Lstat(target)
	switch {
	case e.info.IsDir():
		if oerr == nil && old.IsDir() {
			if c.owner != nil {
				return os.Lchown(target, o.UID, o.GID)
			}
			return nil
		}
		if err := removeEntry(target); err != nil {
			return err
		}
		if err := os.Mkdir(target, 0o700); err != nil {
			return err
		}
	case oerr == nil && old.IsDir():
		return fmt.Errorf("cannot replace directory %s with a file", target)
	case e.info.Mode()&fs.ModeSymlink != 0:
		if err := removeEntry(target); err != nil {
			return err
		}
		if err := os.Symlink(e.link, target); err != nil {
			return err
		}
		return os.Lchown(target, o.UID, o.GID)
	case e.info.Mode().IsRegular():
		if err := removeEntry(target); err != nil {
			return err
		}
		if err := copyFile(e.host, target); err != nil {
			return err
		}
	default:
		c.log.infof("warning: skipping %s: not a file, directory or link", e.host)
		return nil
	}
	if err := os.Lchown(target, o.UID, o.GID); err != nil {
		return err
	}
	if err := unix.Fchmodat(unix.AT_FDCWD, target, perm, 0); err != nil {
		return err
	}
	mt := unix.NsecToTimespec(e.info.ModTime().UnixNano())
	return unix.UtimesNanoAt(unix.AT_FDCWD, target, []unix.Timespec{mt, mt}, unix.AT_SYMLINK_NOFOLLOW)
}

// copyFile copies the regular file src to the new file dst.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, cerr := io.Copy(out, in)
	return errors.Join(cerr, out.Close())
}
