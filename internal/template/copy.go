package template

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"lelantos.dev/lelantos/internal/saferoot"
)

// copySource is one source of COPY or ADD after wildcard expansion.
type copySource struct {
	rel string // path in the context
	dir bool
	// entries are, for a directory, its contents (parents first); for a file, the
	// file itself with rel "".
	entries []copyEntry
}

// copyEntry is one file, directory or link to copy.
type copyEntry struct {
	rel  string // relative to the source directory
	name string // path in the context
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
	bctx, err := saferoot.Open(st.req.ContextDir, saferoot.InRoot)
	if err != nil {
		return fmt.Errorf("%w: build context: %v", ErrInvalid, err)
	}
	defer bctx.Close()
	sources, err := collectSources(bctx, srcs)
	if err != nil {
		return err
	}
	destDir := strings.HasSuffix(dest, "/") || dest == "." || strings.HasSuffix(dest, "/.")
	if !path.IsAbs(dest) {
		dest = path.Join(st.cwd(), dest)
	}
	dest = path.Clean(dest)
	lower, err := openTree(st.rootfs)
	if err != nil {
		return err
	}
	defer lower.Close()
	if len(sources) > 1 && !destDir && !isDirIn(lower, dest) {
		return fmt.Errorf("%w: when copying several sources the destination %s must be a directory ending in /", ErrInvalid, dest)
	}
	sum, err := contentHash(bctx, sources)
	if err != nil {
		return err
	}
	text := fmt.Sprintf("%s chown=%s chmod=%s dest=%s dir=%t content=%s", in.Cmd, chown, in.Flags["chmod"], dest, destDir, sum)
	return b.fsStep(ctx, st, text, func(tmp string) (string, error) {
		treeDir, err := b.childTree(ctx, st.rootfs, tmp)
		if err != nil {
			return "", err
		}
		tree, err := openTree(treeDir)
		if err != nil {
			return "", err
		}
		defer tree.Close()
		c := copier{src: bctx, tree: tree, mode: mode, log: st.log, limits: b.opts.ExtractLimits}
		if chown != "" {
			a, err := lookupUser(tree, chown)
			if err != nil {
				return "", err
			}
			c.owner = &owner{UID: a.UID, GID: a.GID}
		}
		for _, s := range sources {
			if err := c.copySource(ctx, s, dest, destDir, in.Cmd == "ADD"); err != nil {
				return "", fmt.Errorf("%s %s: %w", in.Cmd, s.rel, err)
			}
		}
		return treeDir, nil
	})
}

// collectSources finds the sources in the context, expanding wildcards and leaving
// out what .dockerignore excludes.
func collectSources(bctx *saferoot.Root, patterns []string) ([]copySource, error) {
	ig, err := loadIgnore(bctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	var rels []string
	for _, p := range patterns {
		p = saferoot.Clean(p)
		if !strings.ContainsAny(p, "*?[") {
			rels = append(rels, p)
			continue
		}
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("%w: bad pattern %q", ErrInvalid, p)
		}
		var matched []string
		err := bctx.Walk(".", func(name string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if ok, _ := path.Match(p, name); ok && !ig.excluded(name) {
				matched = append(matched, name)
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
		s, err := collectOne(bctx, rel, ig)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// collectOne describes one source. A source that is a link is followed inside the
// context, as Docker does; links below a directory source are copied as links.
func collectOne(bctx *saferoot.Root, rel string, ig ignorer) (copySource, error) {
	notFound := fmt.Errorf("%w: %s not found in the build context", ErrInvalid, path.Join("/", rel))
	if ig.excluded(rel) {
		return copySource{}, notFound
	}
	fi, err := bctx.Stat(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return copySource{}, notFound
	}
	if err != nil {
		return copySource{}, fmt.Errorf("%w: %s: %v", ErrInvalid, rel, err)
	}
	s := copySource{rel: rel, dir: fi.IsDir()}
	if !s.dir {
		s.entries = []copyEntry{{name: rel, info: fi}}
		return s, nil
	}
	err = bctx.Walk(rel, func(name string, d fs.DirEntry, err error) error {
		if err != nil || name == rel {
			return err
		}
		if ig.excluded(name) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		e := copyEntry{name: name, info: info, rel: name}
		if rel != "." {
			e.rel = strings.TrimPrefix(name, rel+"/")
		}
		if info.Mode()&fs.ModeSymlink != 0 {
			if e.link, err = bctx.Readlink(name); err != nil {
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
func contentHash(bctx *saferoot.Root, sources []copySource) (string, error) {
	h := sha256.New()
	for _, s := range sources {
		fmt.Fprintf(h, "source %q dir=%t\n", s.rel, s.dir)
		for _, e := range s.entries {
			fmt.Fprintf(h, "%q %o %q %d\n", e.rel, e.info.Mode(), e.link, e.info.Size())
			if !e.info.Mode().IsRegular() {
				continue
			}
			f, err := bctx.Open(e.name)
			if err != nil {
				return "", fmt.Errorf("%w: hash %s: %v", ErrInvalid, e.name, err)
			}
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return "", fmt.Errorf("hash %s: %w", e.name, err)
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
