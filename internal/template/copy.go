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
	"strconv"
	"strings"

	"lelantos.dev/lelantos/internal/saferoot"
)

// copySource is one source of COPY or ADD after wildcard expansion.
type copySource struct {
	rel string // path in the source tree
	dir bool
	// entries are, for a directory, its contents (parents first); for a file, the
	// file itself with rel "".
	entries []copyEntry
}

// copyEntry is one file, directory or link to copy.
type copyEntry struct {
	rel  string // relative to the source directory
	name string // path in the source tree
	info fs.FileInfo
	link string // symbolic link target
}

// copyFrom is where a COPY reads: the build context, an upload of the step
// form, an earlier stage or an image.
type copyFrom struct {
	root *saferoot.Root
	ig   excluder
	// key, for a stage or an image, identifies the tree's content, which
	// then needs no hashing; what names it in the log.
	key, what string
	// context is set for the build context (ADD unpacks archives of it only).
	context bool
}

// copyStep runs COPY or ADD.
func (b *Builder) copyStep(ctx context.Context, st *buildState, s *Step, o *copyOp) error {
	if len(o.sources) == 0 && len(o.contents) == 0 {
		return fmt.Errorf("%w: %s needs at least one source and a destination", ErrInvalid, s.Cmd)
	}
	for _, src := range o.sources {
		if strings.Contains(src, "://") || strings.HasPrefix(src, "git@") {
			return fmt.Errorf("%w: %s of a URL (%s) is not supported: the builder does not download; fetch it in a RUN step (e.g. curl -fsSLo) or put it in the build context", ErrInvalid, s.Cmd, src)
		}
	}
	var mode *fs.FileMode
	if m := o.chmod; m != "" {
		n, err := strconv.ParseUint(m, 8, 32)
		if err != nil || n > 0o7777 {
			return fmt.Errorf("%w: --chmod=%s is not an octal mode", ErrInvalid, m)
		}
		fm := fs.FileMode(n)
		mode = &fm
	}
	chown := o.chown
	if chown == "" && o.files != "" {
		chown = st.cfg.User // E2B's COPY step: the files are the current user's
	}
	dest := o.dest
	destDir := strings.HasSuffix(dest, "/") || dest == "." || strings.HasSuffix(dest, "/.")
	dest = st.abs(dest)
	lower, err := openTree(st.rootfs)
	if err != nil {
		return err
	}
	defer lower.Close()
	if len(o.sources)+len(o.contents) > 1 && !destDir && !isDirIn(lower, dest) {
		return fmt.Errorf("%w: when copying several sources the destination %s must be a directory ending in /", ErrInvalid, dest)
	}
	var (
		from    copyFrom
		sources []copySource
	)
	sum := "none"
	if len(o.sources) > 0 {
		if from, err = b.copyOrigin(ctx, st, o); err != nil {
			return err
		}
		defer from.root.Close()
		if sources, err = collectSources(from.root, o.sources, from.ig); err != nil {
			return err
		}
		if from.key != "" {
			sum = from.key + " " + strings.Join(o.sources, "\x00")
		} else if sum, err = contentHash(from.root, sources); err != nil {
			return err
		}
	}
	inline := sha256.New()
	for _, c := range o.contents {
		fmt.Fprintf(inline, "%q %q\n", c.Path, c.Data)
	}
	text := fmt.Sprintf("%s chown=%s chmod=%s dest=%s dir=%t unpack=%v from=%s content=%s inline=%x",
		s.Cmd, chown, o.chmod, dest, destDir, unpackOf(o.unpack), from.what, sum, inline.Sum(nil))
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
		c := copier{src: from.root, tree: tree, mode: mode, log: st.log, limits: b.opts.ExtractLimits}
		if chown != "" {
			a, err := lookupUser(tree, chown)
			if err != nil {
				return "", err
			}
			c.owner = &owner{UID: a.UID, GID: a.GID}
		}
		unpack := o.add && from.context && (o.unpack == nil || *o.unpack)
		for _, src := range sources {
			if err := c.copySource(ctx, src, dest, destDir, unpack); err != nil {
				return "", fmt.Errorf("%s %s: %w", s.Cmd, src.rel, err)
			}
		}
		for _, content := range o.contents {
			if err := c.writeInline(content, dest, destDir || len(o.contents) > 1); err != nil {
				return "", fmt.Errorf("%s <<%s: %w", s.Cmd, content.Path, err)
			}
		}
		return treeDir, nil
	})
}

func unpackOf(p *bool) string {
	if p == nil {
		return "auto"
	}
	return strconv.FormatBool(*p)
}

// copyOrigin opens the tree a COPY reads from.
func (b *Builder) copyOrigin(ctx context.Context, st *buildState, o *copyOp) (copyFrom, error) {
	exclude, err := newIgnorer("--exclude", o.exclude)
	if err != nil {
		return copyFrom{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	switch {
	case o.files != "":
		dir, err := b.uploadedContext(ctx, st, o.files)
		if err != nil {
			return copyFrom{}, err
		}
		root, err := saferoot.Open(dir, saferoot.InRoot)
		if err != nil {
			return copyFrom{}, err
		}
		return copyFrom{root: root, ig: either{exclude}, what: "files " + o.files}, nil
	case o.from != "":
		var rootfs, key string
		if j := st.b.stageRef(o.from, indexOf(st.b.df.Stages, st.stage), true); j >= 0 {
			src := st.b.stages[j]
			rootfs, key = src.rootfs, "stage "+src.key
		} else {
			img := &buildState{b: st.b, stage: &Stage{fromImage: true}, args: map[string]string{}, req: st.req, log: st.log, res: st.res}
			if err := b.fromRegistry(ctx, img, o.from, nil); err != nil {
				return copyFrom{}, fmt.Errorf("--from=%s: %w", o.from, err)
			}
			rootfs, key = img.rootfs, "image "+img.key
		}
		root, err := openTree(rootfs)
		if err != nil {
			return copyFrom{}, err
		}
		return copyFrom{root: root, ig: either{exclude}, key: key, what: key}, nil
	}
	if st.req.ContextDir == "" {
		return copyFrom{}, fmt.Errorf("%w: COPY needs a build context, and the build has none", ErrInvalid)
	}
	root, err := saferoot.Open(st.req.ContextDir, saferoot.InRoot)
	if err != nil {
		return copyFrom{}, fmt.Errorf("%w: build context: %v", ErrInvalid, err)
	}
	ig, err := loadIgnore(root)
	if err != nil {
		root.Close()
		return copyFrom{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return copyFrom{root: root, ig: either{ig, exclude}, what: "context", context: true}, nil
}

func indexOf(stages []*Stage, s *Stage) int {
	for i, x := range stages {
		if x == s {
			return i
		}
	}
	return len(stages)
}

// collectSources finds the sources in the tree, expanding wildcards and leaving
// out what ig excludes.
func collectSources(src *saferoot.Root, patterns []string, ig excluder) ([]copySource, error) {
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
		err := src.Walk(".", func(name string, d fs.DirEntry, err error) error {
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
			return nil, fmt.Errorf("%w: no file matches %s", ErrInvalid, p)
		}
		rels = append(rels, matched...)
	}
	var out []copySource
	for _, rel := range rels {
		s, err := collectOne(src, rel, ig)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// collectOne describes one source. A source that is a link is followed inside the
// tree, as Docker does; links below a directory source are copied as links.
func collectOne(src *saferoot.Root, rel string, ig excluder) (copySource, error) {
	notFound := fmt.Errorf("%w: %s not found in the build context", ErrInvalid, path.Join("/", rel))
	if ig.excluded(rel) {
		return copySource{}, notFound
	}
	fi, err := src.Stat(rel)
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
	err = src.Walk(rel, func(name string, d fs.DirEntry, err error) error {
		if err != nil || name == rel {
			return err
		}
		if ig.excluded(name) {
			if d.IsDir() && ig.skipsDirs() {
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
			if e.link, err = src.Readlink(name); err != nil {
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
func contentHash(src *saferoot.Root, sources []copySource) (string, error) {
	h := sha256.New()
	for _, s := range sources {
		fmt.Fprintf(h, "source %q dir=%t\n", s.rel, s.dir)
		for _, e := range s.entries {
			fmt.Fprintf(h, "%q %o %q %d\n", e.rel, e.info.Mode(), e.link, e.info.Size())
			if !e.info.Mode().IsRegular() {
				continue
			}
			f, err := src.Open(e.name)
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
