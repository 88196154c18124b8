package template

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
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
	// Cmd, Entrypoint, Labels, ExposedPorts, Shell, StopSignal, Volumes and
	// Healthcheck are recorded from the Dockerfile (or its image); the
	// Dockerfile's own CMD and ENTRYPOINT, and HEALTHCHECK, made StartCmd and
	// ReadyCmd when the build gave none.
	Cmd          []string          `json:"cmd,omitempty"`
	Entrypoint   []string          `json:"entrypoint,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	ExposedPorts []string          `json:"exposedPorts,omitempty"`
	Shell        []string          `json:"shell,omitempty"`
	StopSignal   string            `json:"stopSignal,omitempty"`
	Volumes      []string          `json:"volumes,omitempty"`
	Healthcheck  []string          `json:"healthcheck,omitempty"`
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
	startCmd, readyCmd := req.StartCmd, req.ReadyCmd
	if b.opts.Engine != nil { // a builder without one snapshots nothing
		startCmd, readyCmd = startAndReady(req, st)
		if startCmd != "" && req.StartCmd == "" {
			st.log.infof("Start command from the Dockerfile's ENTRYPOINT and CMD: %s", startCmd)
		}
		if readyCmd != "" && req.ReadyCmd == "" {
			st.log.infof("Ready command from the Dockerfile's HEALTHCHECK: %s", readyCmd)
		}
	}
	meta = &Metadata{
		Name: req.Name, BuildID: req.BuildID, Rootfs: root, DefaultWorkdir: st.cfg.Workdir,
		StartCmd: startCmd, ReadyCmd: readyCmd, Cmd: st.cfg.Cmd, Entrypoint: st.cfg.Entrypoint,
		Labels: st.cfg.Labels, ExposedPorts: st.cfg.Ports, Shell: st.cfg.Shell, StopSignal: st.cfg.StopSignal,
		Volumes: st.cfg.Volumes, Healthcheck: st.cfg.Healthcheck,
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
	if meta.StartCmd != "" {
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
		DiskSizeMB: req.DiskSizeMB, StartCmd: meta.StartCmd, ReadyCmd: meta.ReadyCmd, EnvdVersion: EnvdVersion,
		Status: store.TemplateReady,
	}
	old, err := b.opts.Store.GetTemplate(ctx, req.Name)
	exists := err == nil && old.ID == req.Name && old.Status == store.TemplateReady
	if err == nil && old.ID == req.Name {
		t.Public, t.Aliases, t.CreatedAt = old.Public, old.Aliases, old.CreatedAt
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, nil, fmt.Errorf("register template: %w", err)
	}
	tags := req.Tags
	if len(tags) == 0 {
		tags = []string{DefaultTag}
	}
	b.tagsMu.Lock()
	defer b.tagsMu.Unlock()
	if slices.Contains(tags, DefaultTag) || !exists {
		if err := b.opts.Store.PutTemplate(ctx, t); err != nil {
			return nil, nil, fmt.Errorf("register template: %w", err)
		}
	} else {
		st.log.infof("the template's current build stays %s: this build is tagged %s only", old.BuildID, strings.Join(tags, ", "))
	}
	if err := b.tagged(req.Name, req.BuildID, tags); err != nil {
		return nil, nil, fmt.Errorf("tag the build: %w", err)
	}
	return meta, t, nil
}

// startAndReady are the commands a version starts and waits for: the
// build's, else the Dockerfile's own ENTRYPOINT and CMD and its HEALTHCHECK.
func startAndReady(req BuildRequest, st *buildState) (start, ready string) {
	start, ready = req.StartCmd, req.ReadyCmd
	if start == "" && st.ownCmd {
		start = shellJoin(append(slices.Clone(st.cfg.Entrypoint), st.cfg.Cmd...))
	}
	if start != "" && ready == "" && len(st.cfg.Healthcheck) > 1 {
		switch st.cfg.Healthcheck[0] {
		case "CMD-SHELL":
			ready = st.cfg.Healthcheck[1]
		case "CMD":
			ready = shellJoin(st.cfg.Healthcheck[1:])
		}
	}
	return start, ready
}

// shellJoin quotes words for bash -c.
func shellJoin(words []string) string {
	var out []string
	for _, w := range words {
		if w != "" && strings.IndexFunc(w, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
		}) < 0 {
			out = append(out, w)
			continue
		}
		out = append(out, "'"+strings.ReplaceAll(w, "'", `'\''`)+"'")
	}
	return strings.Join(out, " ")
}

// Delete removes a template (by name or alias) from the store and its tags,
// unless inUse reports sandboxes of it or a build of it runs: ErrInUse. Its
// versions' files go with GC, which keeps those a sandbox runs on or a
// create was just handed (Lookup), so that a create racing the delete still
// finds its tree. Its build records and logs stay.
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
	b.tagsMu.Lock()
	err = b.writeTags(t.ID, nil)
	b.tagsMu.Unlock()
	if err != nil {
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
