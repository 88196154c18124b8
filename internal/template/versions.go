package template

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"lelantos.dev/lelantos/internal/saferoot"
	"lelantos.dev/lelantos/internal/store"
)

// Metadata is what a sandbox of a template needs besides the store's record. It is
// kept next to each version's tree as template.json.
type Metadata struct {
	Name    string `json:"name"`
	BuildID string `json:"buildID"`
	// Rootfs is the version's tree: Spec.RootfsPath.
	Rootfs string `json:"rootfs"`
	// DefaultUser and DefaultWorkdir are the Dockerfile's last USER (as a user name
	// when the tree knows it) and WORKDIR; empty when it set none, leaving the
	// daemon's defaults.
	DefaultUser    string `json:"defaultUser,omitempty"`
	DefaultWorkdir string `json:"defaultWorkdir,omitempty"`
	// Env is the Dockerfile's ENV: the template's part of Spec.EnvVars, which the
	// sandbox's own variables override.
	Env map[string]string `json:"env,omitempty"`
	// StartCmd and ReadyCmd are the build's; SnapshotDir, when set, is the snapshot of
	// a sandbox with StartCmd running: Spec.SnapshotImage.
	StartCmd    string `json:"startCmd,omitempty"`
	ReadyCmd    string `json:"readyCmd,omitempty"`
	SnapshotDir string `json:"snapshotDir,omitempty"`
	// Cmd, Entrypoint, Labels and ExposedPorts are recorded from the Dockerfile (or
	// its image) but not used.
	Cmd          []string          `json:"cmd,omitempty"`
	Entrypoint   []string          `json:"entrypoint,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	ExposedPorts []string          `json:"exposedPorts,omitempty"`
	CPUCount     int               `json:"cpuCount"`
	MemoryMB     int               `json:"memoryMB"`
	DiskSizeMB   int               `json:"diskSizeMB"`
	CreatedAt    time.Time         `json:"createdAt"`
}

const metadataFile = "template.json"

func (b *Builder) versionDir(name, buildID string) string {
	return filepath.Join(b.dir, versionsDir, name, buildID)
}

// commitVersion makes the build's version: its own tree, its metadata, its start
// command's snapshot; then points the store's template at it. On failure the
// version is removed again.
func (b *Builder) commitVersion(ctx context.Context, st *buildState) (meta *Metadata, t *store.Template, err error) {
	req := st.req
	vdir := b.versionDir(req.Name, req.BuildID)
	if err := os.MkdirAll(filepath.Dir(vdir), 0o700); err != nil {
		return nil, nil, fmt.Errorf("commit version: %w", err)
	}
	if err := os.Mkdir(vdir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("commit version: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(vdir)
		}
	}()
	root := filepath.Join(vdir, "rootfs")
	if err := linkTree(ctx, st.rootfs, root); err != nil {
		return nil, nil, fmt.Errorf("commit version: %w", err)
	}
	tree, err := openTree(root)
	if err != nil {
		return nil, nil, fmt.Errorf("commit version: %w", err)
	}
	defer tree.Close()
	// The engine mounts the daemon here; a tree from scratch or an image lacks it.
	if err := tree.MkdirAll("/lelantos", 0o755, owner{}); err != nil {
		return nil, nil, fmt.Errorf("commit version: %w", err)
	}
	if err := keepTmpOnDisk(tree); err != nil {
		return nil, nil, fmt.Errorf("commit version: %w", err)
	}
	meta = &Metadata{
		Name: req.Name, BuildID: req.BuildID, Rootfs: root, DefaultWorkdir: st.cfg.Workdir,
		StartCmd: req.StartCmd, ReadyCmd: req.ReadyCmd, Cmd: st.cfg.Cmd, Entrypoint: st.cfg.Entrypoint,
		Labels: st.cfg.Labels, ExposedPorts: st.cfg.Ports,
		CPUCount: req.CPUCount, MemoryMB: req.MemoryMB, DiskSizeMB: req.DiskSizeMB, CreatedAt: time.Now().UTC(),
	}
	if u := st.cfg.User; u != "" {
		a, err := lookupUser(tree, u)
		if err != nil {
			return nil, nil, fmt.Errorf("default user: %w", err)
		}
		meta.DefaultUser = a.Name
		if a.Name == "" {
			meta.DefaultUser = strings.Split(u, ":")[0]
		}
	}
	if len(st.cfg.Env) > 0 {
		meta.Env = map[string]string{}
		for _, kv := range st.cfg.Env {
			k, v, _ := strings.Cut(kv, "=")
			meta.Env[k] = v
		}
	}
	if err := syncFS(vdir); err != nil {
		return nil, nil, fmt.Errorf("commit version: %w", err)
	}
	if req.StartCmd != "" {
		meta.SnapshotDir = filepath.Join(vdir, "snapshot")
		if err := b.snapshot(ctx, meta, st.log); err != nil {
			return nil, nil, err
		}
	}
	if err := writeJSON(filepath.Join(vdir, metadataFile), meta); err != nil {
		return nil, nil, fmt.Errorf("commit version: %w", err)
	}
	t = &store.Template{
		ID: req.Name, BuildID: req.BuildID, RootfsPath: root, CPUCount: req.CPUCount, MemoryMB: req.MemoryMB,
		DiskSizeMB: req.DiskSizeMB, StartCmd: req.StartCmd, ReadyCmd: req.ReadyCmd, EnvdVersion: EnvdVersion,
		Status: store.TemplateReady,
	}
	if old, err := b.opts.Store.GetTemplate(ctx, req.Name); err == nil && old.ID == req.Name {
		t.Public, t.Aliases, t.CreatedAt = old.Public, old.Aliases, old.CreatedAt
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, nil, fmt.Errorf("register template: %w", err)
	}
	if err := b.opts.Store.PutTemplate(ctx, t); err != nil {
		return nil, nil, fmt.Errorf("register template: %w", err)
	}
	return meta, t, nil
}

// Info is a template as the store has it, with the builder's metadata of its current
// version (nil for a template the builder did not build, such as base).
type Info struct {
	Template *store.Template
	Metadata *Metadata
}

// Lookup returns what the control plane needs to create a sandbox of the template
// (by name or alias): its current version's tree, default user and working
// directory, environment, start command and snapshot. A template the builder did not
// build gets metadata made from its store record.
func (b *Builder) Lookup(ctx context.Context, name string) (*Metadata, error) {
	t, err := b.opts.Store.GetTemplate(ctx, name)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("look up template %s: %w", name, ErrNotFound)
		}
		return nil, fmt.Errorf("look up template %s: %w", name, err)
	}
	m, err := b.metadataOf(t)
	if err != nil {
		return nil, fmt.Errorf("look up template %s: %w", name, err)
	}
	return m, nil
}

// metadataOf reads the metadata of the template's current version.
func (b *Builder) metadataOf(t *store.Template) (*Metadata, error) {
	var m Metadata
	err := readJSON(filepath.Join(b.versionDir(t.ID, t.BuildID), metadataFile), &m)
	if errors.Is(err, fs.ErrNotExist) {
		return &Metadata{Name: t.ID, BuildID: t.BuildID, Rootfs: t.RootfsPath, StartCmd: t.StartCmd, ReadyCmd: t.ReadyCmd,
			CPUCount: t.CPUCount, MemoryMB: t.MemoryMB, DiskSizeMB: t.DiskSizeMB, CreatedAt: t.CreatedAt}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("metadata of %s build %s: %w", t.ID, t.BuildID, err)
	}
	return &m, nil
}

// Get returns one template by name or alias.
func (b *Builder) Get(ctx context.Context, name string) (*Info, error) {
	t, err := b.opts.Store.GetTemplate(ctx, name)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("get template %s: %w", name, ErrNotFound)
		}
		return nil, fmt.Errorf("get template %s: %w", name, err)
	}
	return b.info(t), nil
}

// List returns every template, ordered by name.
func (b *Builder) List(ctx context.Context) ([]*Info, error) {
	ts, err := b.opts.Store.ListTemplates(ctx)
	if err != nil {
		return nil, fmt.Errorf("list templates: %w", err)
	}
	out := make([]*Info, 0, len(ts))
	for _, t := range ts {
		out = append(out, b.info(t))
	}
	return out, nil
}

func (b *Builder) info(t *store.Template) *Info {
	i := &Info{Template: t}
	var m Metadata
	if readJSON(filepath.Join(b.versionDir(t.ID, t.BuildID), metadataFile), &m) == nil {
		i.Metadata = &m
	}
	return i
}

// Delete removes a template (by name or alias) from the store and all its versions'
// files, unless inUse reports sandboxes of it or a build of it runs: ErrInUse. Its
// build records and logs stay.
func (b *Builder) Delete(ctx context.Context, name string, inUse func(name string) (bool, error)) error {
	t, err := b.opts.Store.GetTemplate(ctx, name)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("delete template %s: %w", name, ErrNotFound)
		}
		return fmt.Errorf("delete template %s: %w", name, err)
	}
	unlock, ok := b.tryLockName(t.ID)
	if !ok {
		return fmt.Errorf("delete template %s: %w: it is being built", name, ErrInUse)
	}
	defer unlock()
	if inUse != nil {
		used, err := inUse(t.ID)
		if err != nil {
			return fmt.Errorf("delete template %s: %w", name, err)
		}
		if used {
			return fmt.Errorf("delete template %s: %w: sandboxes still run from it", name, ErrInUse)
		}
	}
	if err := b.opts.Store.DeleteTemplate(ctx, t.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("delete template %s: %w", name, err)
	}
	if err := os.RemoveAll(filepath.Join(b.dir, versionsDir, t.ID)); err != nil {
		return fmt.Errorf("delete template %s: %w", name, err)
	}
	return nil
}

// tmpMarker is a file that keeps a template's /tmp from being empty.
const tmpMarker = ".lelantos-tmp-on-disk"

// keepTmpOnDisk makes sure the tree's /tmp is not empty. gVisor mounts a tmpfs, which
// lives in the sandbox's memory, over an empty /tmp; users write large files there,
// and expect them on the sandbox's disk as on a VM.
func keepTmpOnDisk(tree *saferoot.Root) error {
	if err := tree.MkdirAll("/tmp", 0o777|fs.ModeSticky, owner{}); err != nil {
		return err
	}
	err := tree.WriteFile("/tmp/"+tmpMarker, []byte("Keeps /tmp on the sandbox's disk: gVisor puts an empty /tmp in memory.\n"), 0o444)
	if err != nil {
		return fmt.Errorf("mark /tmp: %w", err)
	}
	return nil
}
