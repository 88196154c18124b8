package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"lelantos.dev/lelantos/internal/engine"
	"lelantos.dev/lelantos/internal/runtime/gvisor"
	"lelantos.dev/lelantos/internal/store"
	"lelantos.dev/lelantos/internal/template"
	"lelantos.dev/lelantos/templates"
)

// builtinTemplate is a template the server builds itself from a definition:
// a directory holding a Dockerfile and the files it copies. Built-in
// templates are public: every team may use them.
type builtinTemplate struct {
	name string
	// dir is the definition's directory in its file system.
	dir                   string
	cpu, memoryMB, diskMB int
	startCmd, readyCmd    string
	// needsInterpreter: the start command runs /lelantos/interpreter.
	needsInterpreter bool
}

// builtinTemplates are the templates `lelantos serve` builds, from templates.FS.
var builtinTemplates = []builtinTemplate{{
	name: "code-interpreter-v1", dir: "code-interpreter", cpu: 2, memoryMB: 1024, diskMB: 2048,
	startCmd:         "sudo -n /lelantos/interpreter serve --detach /var/log/lelantos-interpreter.log",
	readyCmd:         "curl -sf http://127.0.0.1:49999/health",
	needsInterpreter: true,
}}

// builtinDefs are built-in template definitions: the templates and the file
// system holding their directories.
type builtinDefs struct {
	templates []builtinTemplate
	fsys      fs.FS
}

// defaultBuiltinDefs are the definitions embedded in lelantos.
func defaultBuiltinDefs() builtinDefs {
	return builtinDefs{templates: builtinTemplates, fsys: templates.FS}
}

// localCADir holds the certificates the host trusts besides its distribution's;
// they are added to built-in templates' contexts (local-ca/).
const localCADir = "/usr/local/share/ca-certificates"

// builtinState is what the server remembers of its last build of a built-in
// template, in <data>/builtin-templates.json.
type builtinState struct {
	Definition string `json:"definition"`
	BuildID    string `json:"buildID"`
}

// warmPooler is the part of the engine that keeps a template's sandboxes booted.
type warmPooler interface {
	SetWarmPool(ctx context.Context, spec engine.Spec, size int) error
}

// builtins builds the built-in templates in the background.
type builtins struct {
	builder     *template.Builder
	db          *store.DB
	dataDir     string
	envd        string
	interpreter string
	// baseRootfs is the base template's tree, which the definitions start
	// FROM; caDir holds the host's local CA certificates (localCADir).
	baseRootfs, caDir string
	// defs are the templates to build and their files.
	defs builtinDefs
	// cache, when set, keeps built trees across data directories: a data
	// directory without a template imports its tree from there, and only
	// takes the start command's snapshot.
	cache *builtinCache
	// pools, when set, keeps warm sandboxes of each built-in template once it
	// is ready, warm of them (--warm-pool-interpreter).
	pools warmPooler
	warm  int
	log   *slog.Logger
	// only, when not nil, names the templates to build; the others are skipped.
	only map[string]bool
	wg   sync.WaitGroup
}

// builtinSet reads --builtin-templates: nil for "all", an empty set for "none".
func builtinSet(names string) map[string]bool {
	names = strings.TrimSpace(names)
	if names == "all" {
		return nil
	}
	set := map[string]bool{}
	for _, n := range strings.Split(names, ",") {
		if n = strings.TrimSpace(n); n != "" && n != "none" {
			set[n] = true
		}
	}
	return set
}

// checkBuiltinNames refuses a --builtin-templates name that is not a built-in template.
func checkBuiltinNames(names string) error {
	for n := range builtinSet(names) {
		known := false
		for _, t := range builtinTemplates {
			known = known || t.name == n
		}
		if !known {
			return fmt.Errorf("--builtin-templates: %q is not a built-in template", n)
		}
	}
	return nil
}

// start makes, one after the other, every built-in template that is missing
// or whose definition (files, commands, sizes, the binaries its snapshot runs)
// changed; a template whose definition is unchanged costs nothing. It returns
// at once; wait waits for the builds, which end early when ctx does.
func (b *builtins) start(ctx context.Context) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for _, t := range b.defs.templates {
			if ctx.Err() != nil {
				return
			}
			if b.only != nil && !b.only[t.name] {
				continue
			}
			if err := b.ensure(ctx, t); err != nil {
				if ctx.Err() == nil {
					b.log.Error("built-in template: build failed; creates of it fail until a restart builds it", "template", t.name, "err", err)
				}
				continue
			}
			b.pool(ctx, t)
		}
	}()
}

func (b *builtins) wait() { b.wg.Wait() }

// ensure makes a version of t unless its current one has t's definition.
func (b *builtins) ensure(ctx context.Context, t builtinTemplate) error {
	if t.needsInterpreter && b.interpreter == "" {
		b.log.Warn("built-in template: no interpreter binary (--interpreter); not building it", "template", t.name)
		return nil
	}
	tree, err := b.treeHash(t)
	if err != nil {
		return err
	}
	def, err := b.definition(t, tree)
	if err != nil {
		return err
	}
	states := b.readStates()
	cur, err := b.db.GetTemplate(ctx, t.name)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("read template %s: %w", t.name, err)
	}
	ready := err == nil && cur.Status == store.TemplateReady
	if st, ok := states[t.name]; ok && ready && st.Definition == def && st.BuildID == cur.BuildID {
		b.log.Info("built-in template up to date", "template", t.name, "build", cur.BuildID)
		return nil
	}
	if !ready {
		// Until the first version is made, a create names what it waits for.
		if err := b.db.PutTemplate(ctx, &store.Template{ID: t.name, Name: t.name, TeamID: store.DefaultTeamID,
			CPUCount: t.cpu, MemoryMB: t.memoryMB, DiskSizeMB: t.diskMB, Status: store.TemplateBuilding, Public: true}); err != nil {
			return fmt.Errorf("register template %s: %w", t.name, err)
		}
	}
	start := time.Now()
	res, from, err := b.newVersion(ctx, t, tree)
	if err != nil {
		if !ready {
			_ = b.db.PutTemplate(context.WithoutCancel(ctx), &store.Template{ID: t.name, CPUCount: t.cpu, MemoryMB: t.memoryMB,
				DiskSizeMB: t.diskMB, Status: store.TemplateError, Public: true})
		}
		return err
	}
	if res.Template != nil && !res.Template.Public {
		res.Template.Public = true
		if err := b.db.PutTemplate(ctx, res.Template); err != nil {
			return fmt.Errorf("make template %s public: %w", t.name, err)
		}
	}
	states[t.name] = builtinState{Definition: def, BuildID: res.BuildID}
	if err := b.writeStates(states); err != nil {
		b.log.Warn("built-in template: remember the build", "template", t.name, "err", err)
	}
	b.log.Info("built-in template ready", "template", t.name, "build", res.BuildID, "from", from,
		"took", time.Since(start).Round(time.Millisecond), "steps", res.Steps, "cached", res.CacheHits, "ran", res.Ran)
	return nil
}

// pool keeps b.warm sandboxes of t's current version booted, shaped as a create
// that sets no sizes asks for them.
func (b *builtins) pool(ctx context.Context, t builtinTemplate) {
	if b.pools == nil || b.warm <= 0 {
		return
	}
	m, err := b.builder.Lookup(ctx, t.name)
	if err != nil {
		b.log.Warn("built-in template: no warm pool", "template", t.name, "err", err)
		return
	}
	spec := engine.Spec{TemplateID: t.name, RootfsPath: m.Rootfs, SnapshotImage: m.SnapshotDir, RuntimeClass: gvisor.Class,
		CPUCount: t.cpu, MemoryMB: t.memoryMB, DiskSizeMB: t.diskMB, AllowInternet: true}
	if err := b.pools.SetWarmPool(ctx, spec, b.warm); err != nil {
		b.log.Warn("built-in template: no warm pool", "template", t.name, "err", err)
		return
	}
	b.log.Info("built-in template: warm pool set", "template", t.name, "size", b.warm)
}

func (b *builtins) statePath() string { return filepath.Join(b.dataDir, "builtin-templates.json") }

func (b *builtins) readStates() map[string]builtinState {
	out := map[string]builtinState{}
	data, err := os.ReadFile(b.statePath())
	if err == nil {
		_ = json.Unmarshal(data, &out)
	}
	return out
}

func (b *builtins) writeStates(s map[string]builtinState) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := b.statePath() + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, b.statePath())
}

// progressLog logs a build's steps and results (not every output line of its
// RUN steps).
type progressLog struct {
	log  *slog.Logger
	part string
}

func (p *progressLog) Write(b []byte) (int, error) {
	p.part += string(b)
	for {
		line, rest, ok := strings.Cut(p.part, "\n")
		if !ok {
			break
		}
		p.part = rest
		if t := strings.TrimSpace(line); strings.HasPrefix(t, "Step ") || strings.HasPrefix(t, "--->") ||
			strings.HasPrefix(t, "template ") || strings.HasPrefix(t, "Start command") || strings.HasPrefix(t, "Ready command") {
			if len(t) > 200 {
				t = t[:200] + "..."
			}
			p.log.Info("built-in template: " + t)
		}
	}
	if len(p.part) > 64<<10 {
		p.part = p.part[len(p.part)-4096:]
	}
	return len(b), nil
}

// defaultInterpreter is the interpreter binary built next to this binary.
func defaultInterpreter() string {
	exe, err := os.Executable()
	if err != nil {
		return "interpreter"
	}
	return filepath.Join(filepath.Dir(exe), "interpreter")
}

// interpreterOrNone returns p when it is a file, else "" after saying so.
func interpreterOrNone(p string, log *slog.Logger) string {
	if p == "" {
		return ""
	}
	if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
		log.Warn("no code interpreter binary: the code-interpreter-v1 template is not built (scripts/build.sh builds bin/interpreter)", "path", p)
		return ""
	}
	return p
}
