package engine

import (
	"context"
	"fmt"
	"path"
	"path/filepath"
	"strings"

	"lelantos.dev/lelantos/internal/runtime"
)

// Volumes gives sandboxes the host directories of the volumes they mount;
// internal/volume's Local (volumes of this node) and Dirs (volumes on a file system
// every node shares) implement it.
type Volumes interface {
	// Attach makes volume id's content available on this node and returns its host
	// directory, valid while the node runs. It is called before every start or
	// restore of a sandbox that mounts the volume.
	Attach(ctx context.Context, id string) (string, error)
}

// VolumeMount is a volume mounted read-write into a sandbox. Every sandbox mounting
// one volume sees the same files, and they outlive the sandbox.
type VolumeMount struct {
	// VolumeID names the volume to Options.Volumes.
	VolumeID string `json:"volumeID"`
	// Name is the volume's name in its team, for logs.
	Name string `json:"name,omitempty"`
	// Path is where the sandbox sees it: absolute and clean.
	Path string `json:"path"`
}

// checkVolumeMounts refuses mounts that cannot be made: no volume ID, a path that is
// not absolute and clean, or one over the daemon's directory or another mount.
func checkVolumeMounts(ms []VolumeMount) error {
	for i, m := range ms {
		switch {
		case m.VolumeID == "":
			return fmt.Errorf("%w: volume mount #%d: no volume ID", ErrInvalid, i)
		case !path.IsAbs(m.Path) || path.Clean(m.Path) != m.Path || m.Path == "/":
			return fmt.Errorf("%w: volume mount #%d: path %q must be absolute, clean and not /", ErrInvalid, i, m.Path)
		case m.Path == envdMountPath || strings.HasPrefix(m.Path, envdMountPath+"/"):
			return fmt.Errorf("%w: volume mount #%d: path %q is the daemon's", ErrInvalid, i, m.Path)
		}
		for j := range i {
			if p := ms[j].Path; p == m.Path || strings.HasPrefix(m.Path, p+"/") || strings.HasPrefix(p, m.Path+"/") {
				return fmt.Errorf("%w: volume mount #%d: path %q overlaps mount #%d's %q", ErrInvalid, i, m.Path, j, p)
			}
		}
	}
	return nil
}

// envdMountPath is where sandboxes see the daemon's directory.
const envdMountPath = "/lelantos"

// attachVolumes makes every volume of s available on the node, so that a start or
// restore of the sandbox finds them: a volume missing or failing is an error here,
// before anything runs.
func (e *Engine) attachVolumes(ctx context.Context, s Spec) error {
	if len(s.VolumeMounts) == 0 {
		return nil
	}
	if e.opts.Volumes == nil {
		return fmt.Errorf("%w: this node keeps no volumes, and the sandbox mounts %d", ErrInvalid, len(s.VolumeMounts))
	}
	for i, m := range s.VolumeMounts {
		if _, err := e.opts.Volumes.Attach(ctx, m.VolumeID); err != nil {
			return fmt.Errorf("volume mount #%d (%s at %s): %w", i, m.Name, m.Path, err)
		}
	}
	return nil
}

// volumeMounts are the runtime's mounts of the volumes of s. attachVolumes ran
// before, so attaching again only finds them; should one fail even so, its source is
// a path that does not exist, naming the volume, so that the start fails rather
// than the sandbox writing to its own disk unawares.
func (e *Engine) volumeMounts(s Spec) []runtime.Mount {
	out := make([]runtime.Mount, 0, len(s.VolumeMounts))
	for _, m := range s.VolumeMounts {
		src := filepath.Join(e.opts.DataDir, "volume-unavailable", m.VolumeID)
		if e.opts.Volumes != nil {
			dir, err := e.opts.Volumes.Attach(context.Background(), m.VolumeID)
			if err == nil {
				src = dir
			} else {
				e.opts.Logger.Error("attach volume", "sandbox", s.ID, "volume", m.VolumeID, "err", err)
			}
		}
		out = append(out, runtime.Mount{Source: src, Destination: m.Path, Writable: true})
	}
	return out
}

// volumesKey is the part of a warm pool's key the volumes of s make: pooled
// sandboxes mount none, and mounts cannot be added to a running sandbox.
func volumesKey(s Spec) string {
	var b strings.Builder
	for _, m := range s.VolumeMounts {
		fmt.Fprintf(&b, "|%s:%s", m.VolumeID, m.Path)
	}
	return b.String()
}
