package template

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"

	"lelantos.dev/lelantos/internal/store"
)

// Prefixes naming an image on disk explicitly, as skopeo writes them.
var imagePrefixes = []string{"oci:", "oci-archive:", "docker-archive:"}

// from runs FROM. The image is, in order: "scratch" (an empty tree), "base" (the base
// template's tree), a path (an OCI image layout directory, or an OCI or docker save
// archive; relative paths are inside the build context, absolute ones must be under
// BuilderOptions.ImageDirs), or the name of a ready template. Anything else would be
// a registry image, which this host cannot pull.
func (b *Builder) from(ctx context.Context, st *buildState, in Instruction) error {
	st.staged = true
	lx := wordLexer{escape: st.escape, vars: func(k string) (string, bool) { v, ok := st.global[k]; return v, ok }}
	words, err := lx.words(in.Args)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if len(words) != 1 && !(len(words) == 3 && strings.EqualFold(words[1], "AS")) {
		return fmt.Errorf("%w: want FROM <image> [AS <name>]", ErrInvalid)
	}
	if p := in.Flags["platform"]; p != "" && p != "linux/"+goruntime.GOARCH {
		return fmt.Errorf("%w: platform %s cannot run on this linux/%s host", ErrInvalid, p, goruntime.GOARCH)
	}
	ref := words[0]
	switch {
	case ref == "scratch":
		st.key = chainKey("", "FROM scratch")
		return b.fsStep(ctx, st, "empty", func(tmp string) (string, error) { return b.childTree(ctx, "", tmp) })
	case ref == "base":
		if b.opts.BaseRootfs == nil {
			return fmt.Errorf("%w: FROM base: this builder has no base template", ErrInvalid)
		}
		root, err := b.opts.BaseRootfs()
		if err != nil {
			return fmt.Errorf("FROM base: %w", err)
		}
		st.key, st.rootfs = chainKey("", "FROM base "+root), root
		// As an image's configuration would, so that ENV PATH=/x:$PATH works.
		st.cfg.Env = []string{"PATH=" + defaultPath}
		st.log.infof(" ---> base template %s", root)
		return nil
	case isPathRef(ref):
		p, err := b.imagePath(st.req.ContextDir, ref)
		if err != nil {
			return err
		}
		return b.fromImage(ctx, st, p)
	}
	t, err := b.opts.Store.GetTemplate(ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: FROM %s: no template has that name, and %w: build from base, scratch, another template, or an OCI image layout or archive in the build context (e.g. made with skopeo copy docker://%s oci-archive:image.tar)", ErrInvalid, ref, ErrRegistry, ref)
	}
	if err != nil {
		return fmt.Errorf("FROM %s: %w", ref, err)
	}
	if t.Status != store.TemplateReady {
		return fmt.Errorf("%w: FROM %s: the template is %s", ErrInvalid, ref, t.Status)
	}
	meta, err := b.metadataOf(t)
	if err != nil {
		return fmt.Errorf("FROM %s: %w", ref, err)
	}
	st.key, st.rootfs, st.cfg = chainKey("", "FROM template "+t.ID+"@"+t.BuildID), meta.Rootfs, meta.config()
	st.log.infof(" ---> template %s, build %s", t.ID, t.BuildID)
	return nil
}

func isPathRef(ref string) bool {
	for _, p := range imagePrefixes {
		if strings.HasPrefix(ref, p) {
			return true
		}
	}
	return strings.HasPrefix(ref, "/") || strings.HasPrefix(ref, "./") || strings.HasPrefix(ref, "../") || strings.HasSuffix(ref, ".tar")
}

// imagePath finds an image reference's file or directory on the host.
func (b *Builder) imagePath(contextDir, ref string) (string, error) {
	for _, p := range imagePrefixes {
		ref = strings.TrimPrefix(ref, p)
	}
	if filepath.IsAbs(ref) {
		p := filepath.Clean(ref)
		for _, d := range b.opts.ImageDirs {
			if rel, err := filepath.Rel(d, p); err == nil && !strings.HasPrefix(rel, "..") {
				return p, nil
			}
		}
		return "", fmt.Errorf("%w: FROM %s: images by absolute path must be under the builder's image directories (%s); put the image in the build context and use a relative path", ErrInvalid, ref, strings.Join(b.opts.ImageDirs, ", "))
	}
	if contextDir == "" {
		return "", fmt.Errorf("%w: FROM %s: a relative image path needs a build context", ErrInvalid, ref)
	}
	p, err := resolveIn(contextDir, ref, true)
	if err != nil {
		return "", fmt.Errorf("%w: FROM %s: %v", ErrInvalid, ref, err)
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%w: FROM %s: not found in the build context", ErrInvalid, ref)
	}
	return p, nil
}

// fromImage starts from an OCI image layout directory or an image archive. The
// layer is keyed by the manifest's digest, or by an archive's own digest, so that a
// cached archive is not even unpacked.
func (b *Builder) fromImage(ctx context.Context, st *buildState, p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("%w: FROM %s: %v", ErrInvalid, p, err)
	}
	key := ""
	if !fi.IsDir() {
		sum, err := fileDigest(p)
		if err != nil {
			return fmt.Errorf("FROM %s: %w", p, err)
		}
		key = chainKey("", "FROM archive "+sum)
		if b.useCachedImage(st, key) {
			return nil
		}
	}
	tmp, err := b.tempDir("image-")
	if err != nil {
		return err
	}
	defer b.removeTemp(tmp)
	layout := p
	if !fi.IsDir() {
		layout = filepath.Join(tmp, "layout")
		if err := os.Mkdir(layout, 0o700); err != nil {
			return err
		}
		if err := extractFile(p, layout, layout, extractOptions{chown: &owner{}}); err != nil {
			return fmt.Errorf("%w: FROM %s: unpack the archive: %v", ErrInvalid, p, err)
		}
	}
	img, err := readImage(layout)
	if err != nil {
		return fmt.Errorf("%w: FROM %s: %v", ErrInvalid, p, err)
	}
	if key == "" {
		key = chainKey("", "FROM image "+img.digest)
		if b.useCachedImage(st, key) {
			return nil
		}
	}
	st.log.infof(" ---> unpacking image %s (%d layers)", img.digest, len(img.layers))
	tree, err := b.childTree(ctx, "", tmp)
	if err != nil {
		return err
	}
	for i, l := range img.layers {
		if err := unpackLayer(l, tree, st.log); err != nil {
			return fmt.Errorf("%w: FROM %s: layer %d: %v", ErrInvalid, p, i+1, err)
		}
	}
	cfg := img.config
	l, err := b.commitLayer(tmp, key, "", "FROM image "+img.digest, tree, &cfg)
	if err != nil {
		return err
	}
	st.key, st.rootfs, st.cfg = key, l.Rootfs, cfg
	st.res.Ran++
	return nil
}

// useCachedImage starts the state from the cached image layer key, if there is one.
func (b *Builder) useCachedImage(st *buildState, key string) bool {
	l, ok := b.cachedLayer(key)
	if !ok || l.Config == nil {
		return false
	}
	st.log.infof(" ---> using cache (image layer %s)", key[:12])
	st.key, st.rootfs, st.cfg = key, l.Rootfs, *l.Config
	st.res.CacheHits++
	return true
}

// unpackLayer applies one image layer to tree.
func unpackLayer(l imageLayer, tree string, log *buildLog) error {
	f, err := os.Open(l.path)
	if err != nil {
		return err
	}
	defer f.Close()
	v := &verifier{r: f, want: l.digest}
	r, _, err := decompress(v)
	if err != nil {
		return err
	}
	if err := extractTar(r, tree, tree, extractOptions{whiteouts: true, log: log}); err != nil {
		return err
	}
	return v.check()
}

// config rebuilds the image configuration a template was built with.
func (m *Metadata) config() imageConfig {
	c := imageConfig{User: m.DefaultUser, Workdir: m.DefaultWorkdir, Cmd: m.Cmd, Entrypoint: m.Entrypoint,
		Labels: m.Labels, Ports: slices.Clone(m.ExposedPorts)}
	for _, k := range sortedKeys(m.Env) {
		c.Env = append(c.Env, k+"="+m.Env[k])
	}
	return c
}
