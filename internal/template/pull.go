package template

import (
	"context"
	"fmt"
	"io"
	"strings"

	"lelantos.dev/lelantos/internal/saferoot"
	"lelantos.dev/lelantos/internal/template/image"
)

// fromRegistry starts from an image in a registry. Each layer is unpacked
// onto the tree of the layers below it and cached under the chain of their
// digests, so images sharing layers share their trees, and a rebuild reads
// nothing but the manifest.
func (b *Builder) fromRegistry(ctx context.Context, st *buildState, ref string, auth *RegistryAuth) error {
	o := b.opts.Registries
	if auth != nil {
		o.Credentials = &image.Credentials{Username: auth.Username, Password: auth.Password}
	}
	img, err := image.Resolve(ctx, ref, o)
	if err != nil {
		return fmt.Errorf("%w: FROM %s: %w", ErrRegistry, ref, err)
	}
	st.log.infof(" ---> image %s (%d layers)", img.Ref, len(img.Layers))
	limits := b.opts.ExtractLimits.WithDefaults()
	var total saferoot.ExtractStats
	key, rootfs := "", ""
	for i, l := range img.Layers {
		key = chainKey(key, "LAYER "+l.Digest)
		if c, ok := b.cachedLayer(key); ok {
			st.log.infof(" ---> layer %d/%d %s: cached", i+1, len(img.Layers), short(l.Digest))
			rootfs = c.Rootfs
			st.res.CacheHits++
			continue
		}
		left := limits
		left.Bytes -= total.Bytes
		left.Entries -= total.Entries
		if left.Bytes <= 0 || left.Entries <= 0 {
			return fmt.Errorf("%w: FROM %s: layer %d: the image is larger than this node's limit (%d bytes, %d entries)", ErrInvalid, ref, i+1, limits.Bytes, limits.Entries)
		}
		st.log.infof(" ---> layer %d/%d %s: pulling %s", i+1, len(img.Layers), short(l.Digest), humanBytes(l.Size))
		stats, c, err := b.pullLayer(ctx, l, key, rootfs, left)
		total.Bytes, total.Entries = total.Bytes+stats.Bytes, total.Entries+stats.Entries
		if err != nil {
			return fmt.Errorf("%w: FROM %s: layer %d: %w", ErrRegistry, ref, i+1, err)
		}
		if stats.Devices > 0 {
			st.log.infof("warning: skipped %d device files of the layer", stats.Devices)
		}
		rootfs = c.Rootfs
		st.res.Ran++
	}
	if rootfs == "" { // an image of no layers
		tmp, err := b.tempDir("image-")
		if err != nil {
			return err
		}
		defer b.removeTemp(tmp)
		tree, err := b.childTree(ctx, "", tmp)
		if err != nil {
			return err
		}
		key = chainKey("", "LAYERS none")
		l, err := b.commitLayer(tmp, key, "", "no layers", tree, nil)
		if err != nil {
			return err
		}
		rootfs = l.Rootfs
	}
	c := img.Config
	st.cfg = imageConfig{Env: c.Env, User: c.User, Workdir: c.WorkingDir, Cmd: c.Cmd, Entrypoint: c.Entrypoint, Labels: c.Labels,
		Ports: c.ExposedPorts, Shell: c.Shell, StopSignal: c.StopSignal, Volumes: c.Volumes, Healthcheck: c.Healthcheck}
	st.key, st.rootfs = chainKey(key, "IMAGE "+img.Digest), rootfs
	return nil
}

// pullLayer unpacks layer l onto a copy of the tree parent and caches the
// result as layer key. The stream is checked against its digest.
func (b *Builder) pullLayer(ctx context.Context, l image.RemoteLayer, key, parent string, limits saferoot.Limits) (saferoot.ExtractStats, *layerRecord, error) {
	var stats saferoot.ExtractStats
	tmp, err := b.tempDir("layer-")
	if err != nil {
		return stats, nil, err
	}
	defer b.removeTemp(tmp)
	treeDir, err := b.childTree(ctx, parent, tmp)
	if err != nil {
		return stats, nil, err
	}
	tree, err := openTree(treeDir)
	if err != nil {
		return stats, nil, err
	}
	defer tree.Close()
	rc, err := l.Open()
	if err != nil {
		return stats, nil, err
	}
	defer rc.Close()
	stats, err = tree.Extract(ctx, rc, ".", saferoot.ExtractOptions{Whiteouts: true, Limits: limits})
	if err != nil {
		return stats, nil, err
	}
	// Read to the end: the registry client checks the digest there.
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return stats, nil, fmt.Errorf("read layer %s: %w", l.Digest, err)
	}
	if err := rc.Close(); err != nil {
		return stats, nil, fmt.Errorf("read layer %s: %w", l.Digest, err)
	}
	c, err := b.commitLayer(tmp, key, "", "LAYER "+l.Digest, treeDir, nil)
	return stats, c, err
}

func short(digest string) string {
	d := strings.TrimPrefix(digest, "sha256:")
	return d[:min(12, len(d))]
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
