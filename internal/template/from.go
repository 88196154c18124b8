package template

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"

	"lelantos.dev/lelantos/internal/saferoot"
	"lelantos.dev/lelantos/internal/store"
	"lelantos.dev/lelantos/internal/template/image"
)

// goarch is the architecture builds run on and images are pulled for.
const goarch = goruntime.GOARCH

// Prefixes naming an image on disk explicitly, as skopeo writes them.
var imagePrefixes = []string{"oci:", "oci-archive:", "docker-archive:"}

// from starts stage i. Its base is, in order: an earlier stage of the
// Dockerfile, "scratch" (an empty tree), "base" (the base template's tree), a
// path (an OCI image layout directory, or an OCI or docker save archive;
// relative paths are inside the build context, absolute ones must be under
// BuilderOptions.ImageDirs), the name of a ready template, else an image in
// a registry. The step form's fromTemplate names templates only, its
// fromImage images only.
func (b *Builder) from(ctx context.Context, st *buildState, i int) error {
	s := st.stage
	ref, err := st.b.fromName(s)
	if err != nil {
		return err
	}
	if s.Platform != "" {
		p, _, err := st.b.lex.ProcessWord(s.Platform, mapEnv(st.b.global))
		if err != nil {
			return fmt.Errorf("%w: --platform: %v", ErrInvalid, err)
		}
		if p != "linux/"+goarch && p != "linux/"+goarch+"/v8" {
			return fmt.Errorf("%w: platform %s cannot run on this linux/%s host", ErrInvalid, p, goarch)
		}
	}
	if j := st.b.stageRef(ref, i, false); j >= 0 && !s.fromImage && !s.fromTemplate {
		src := st.b.stages[j]
		st.key, st.rootfs, st.cfg, st.ownCmd = chainKey(src.key, "FROM stage"), src.rootfs, src.cfg.clone(), src.ownCmd
		st.log.infof(" ---> stage %s", ref)
		return nil
	}
	switch {
	case s.fromImage:
		return b.fromRegistry(ctx, st, ref, s.registry)
	case ref == "scratch" && !s.fromTemplate:
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
	case isPathRef(ref) && !s.fromTemplate:
		src, name, err := b.imageSource(st.req.ContextDir, ref)
		if err != nil {
			return err
		}
		defer src.Close()
		return b.fromImage(ctx, st, src, name)
	}
	lookup := b.opts.Store.GetTemplate
	if st.req.FromTemplate != nil {
		lookup = st.req.FromTemplate
	}
	t, err := lookup(ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		if s.fromTemplate {
			return fmt.Errorf("%w: fromTemplate %s: no template has that name", ErrInvalid, ref)
		}
		if err := b.fromRegistry(ctx, st, ref, nil); err != nil {
			return fmt.Errorf("FROM %s: no template has that name, and as an image: %w", ref, err)
		}
		return nil
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

// imageSource finds an image reference's file or directory: the tree it is in and
// its path there. Images in the build context resolve links inside the context; an
// image directory of the builder's may hold no link that leaves it.
func (b *Builder) imageSource(contextDir, ref string) (*saferoot.Root, string, error) {
	for _, p := range imagePrefixes {
		ref = strings.TrimPrefix(ref, p)
	}
	if filepath.IsAbs(ref) {
		p := filepath.Clean(ref)
		for _, d := range b.opts.ImageDirs {
			if rel, err := filepath.Rel(d, p); err == nil && !strings.HasPrefix(rel, "..") {
				root, err := saferoot.Open(d, saferoot.Beneath)
				if err != nil {
					return nil, "", fmt.Errorf("FROM %s: image directory: %w", ref, err)
				}
				return root, filepath.ToSlash(rel), nil
			}
		}
		return nil, "", fmt.Errorf("%w: FROM %s: images by absolute path must be under the builder's image directories (%s); put the image in the build context and use a relative path", ErrInvalid, ref, strings.Join(b.opts.ImageDirs, ", "))
	}
	if contextDir == "" {
		return nil, "", fmt.Errorf("%w: FROM %s: a relative image path needs a build context", ErrInvalid, ref)
	}
	root, err := saferoot.Open(contextDir, saferoot.InRoot)
	if err != nil {
		return nil, "", fmt.Errorf("%w: FROM %s: build context: %v", ErrInvalid, ref, err)
	}
	return root, saferoot.Clean(ref), nil
}

// fromImage starts from an OCI image layout directory or an image archive, name in
// src. The layer is keyed by the manifest's digest, or by an archive's own digest,
// so that a cached archive is not even unpacked.
func (b *Builder) fromImage(ctx context.Context, st *buildState, src *saferoot.Root, name string) error {
	fi, err := src.Stat(name)
	if err != nil {
		return fmt.Errorf("%w: FROM %s: %v", ErrInvalid, name, err)
	}
	var layout *saferoot.Root
	key := ""
	if fi.IsDir() {
		// A layout has no reason to hold links out of itself.
		if layout, err = src.Sub(name, saferoot.Beneath); err != nil {
			return fmt.Errorf("%w: FROM %s: %v", ErrInvalid, name, err)
		}
		defer layout.Close()
	} else {
		f, err := src.Open(name)
		if err != nil {
			return fmt.Errorf("%w: FROM %s: %v", ErrInvalid, name, err)
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return fmt.Errorf("FROM %s: %w", name, err)
		}
		key = chainKey("", "FROM archive sha256:"+hex.EncodeToString(h.Sum(nil)))
		if b.useCachedImage(st, key) {
			return nil
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("FROM %s: %w", name, err)
		}
		tmp, err := b.tempDir("image-")
		if err != nil {
			return err
		}
		defer b.removeTemp(tmp)
		if err := os.Mkdir(filepath.Join(tmp, "layout"), 0o700); err != nil {
			return err
		}
		if layout, err = saferoot.Open(filepath.Join(tmp, "layout"), saferoot.Beneath); err != nil {
			return err
		}
		defer layout.Close()
		if _, err := layout.Extract(ctx, f, ".", saferoot.ExtractOptions{Owner: &owner{}, Limits: b.opts.ExtractLimits}); err != nil {
			return fmt.Errorf("%w: FROM %s: unpack the archive: %w", ErrInvalid, name, err)
		}
	}
	img, err := image.Read(layout)
	if err != nil {
		return fmt.Errorf("%w: FROM %s: %w", ErrInvalid, name, err)
	}
	if key == "" {
		key = chainKey("", "FROM image "+img.Digest)
		if b.useCachedImage(st, key) {
			return nil
		}
	}
	st.log.infof(" ---> unpacking image %s (%d layers)", img.Digest, len(img.Layers))
	tmp, err := b.tempDir("image-")
	if err != nil {
		return err
	}
	defer b.removeTemp(tmp)
	treeDir, err := b.childTree(ctx, "", tmp)
	if err != nil {
		return err
	}
	tree, err := openTree(treeDir)
	if err != nil {
		return err
	}
	defer tree.Close()
	stats, err := img.Unpack(ctx, layout, tree, b.opts.ExtractLimits)
	if err != nil {
		return fmt.Errorf("%w: FROM %s: %w", ErrInvalid, name, err)
	}
	if stats.Devices > 0 {
		st.log.infof("warning: skipped %d device files of the image", stats.Devices)
	}
	c := img.Config
	cfg := imageConfig{Env: c.Env, User: c.User, Workdir: c.WorkingDir, Cmd: c.Cmd, Entrypoint: c.Entrypoint, Labels: c.Labels,
		Ports: c.ExposedPorts, Shell: c.Shell, StopSignal: c.StopSignal, Volumes: c.Volumes, Healthcheck: c.Healthcheck}
	l, err := b.commitLayer(tmp, key, "", "FROM image "+img.Digest, treeDir, &cfg)
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
	st.key, st.rootfs, st.cfg = key, l.Rootfs, l.Config.clone()
	st.res.CacheHits++
	return true
}

// config rebuilds the image configuration a template was built with.
func (m *Metadata) config() imageConfig {
	c := imageConfig{User: m.DefaultUser, Workdir: m.DefaultWorkdir, Cmd: slices.Clone(m.Cmd), Entrypoint: slices.Clone(m.Entrypoint),
		Ports: slices.Clone(m.ExposedPorts), Shell: slices.Clone(m.Shell), StopSignal: m.StopSignal, Volumes: slices.Clone(m.Volumes),
		Healthcheck: slices.Clone(m.Healthcheck)}
	if m.Labels != nil {
		c.Labels = map[string]string{}
		for k, v := range m.Labels {
			c.Labels[k] = v
		}
	}
	for _, k := range sortedKeys(m.Env) {
		c.Env = append(c.Env, k+"="+m.Env[k])
	}
	return c
}
