package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"lelantos.dev/lelantos/internal/engine"
	"lelantos.dev/lelantos/internal/runtime/gvisor"
	"lelantos.dev/lelantos/internal/store"
	"lelantos.dev/lelantos/internal/template"
	"lelantos.dev/lelantos/templates"
)

// builtinTemplate is a template the server builds itself from a definition in
// templates.FS. Built-in templates are public: every team may use them.
type builtinTemplate struct {
	name string
	// dir is the definition's directory in templates.FS.
	dir                   string
	cpu, memoryMB, diskMB int
	startCmd, readyCmd    string
	// needsInterpreter: the start command runs /lelantos/interpreter.
	needsInterpreter bool
}

// builtinTemplates are the templates `lelantos serve` builds.
var builtinTemplates = []builtinTemplate{{
	name: "code-interpreter-v1", dir: "code-interpreter", cpu: 2, memoryMB: 1024, diskMB: 2048,
	startCmd:         "sudo -n /lelantos/interpreter serve --detach /var/log/lelantos-interpreter.log",
	readyCmd:         "curl -sf http://127.0.0.1:49999/health",
	needsInterpreter: true,
}}

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

// start builds, one after the other, every built-in template that is missing
// or whose definition (files, commands, sizes, the binaries its snapshot runs)
// changed; a template whose definition is unchanged costs nothing. It returns
// at once; wait waits for the builds, which end early when ctx does.
func (b *builtins) start(ctx context.Context) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for _, t := range builtinTemplates {
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

// ensure builds t unless its current build has t's definition.
func (b *builtins) ensure(ctx context.Context, t builtinTemplate) error {
	if t.needsInterpreter && b.interpreter == "" {
		b.log.Warn("built-in template: no interpreter binary (--interpreter); not building it", "template", t.name)
		return nil
	}
	def, err := b.definition(t)
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
		// Until the first build is done, a create names what it waits for.
		if err := b.db.PutTemplate(ctx, &store.Template{ID: t.name, Name: t.name, TeamID: store.DefaultTeamID,
			CPUCount: t.cpu, MemoryMB: t.memoryMB, DiskSizeMB: t.diskMB, Status: store.TemplateBuilding, Public: true}); err != nil {
			return fmt.Errorf("register template %s: %w", t.name, err)
		}
	}
	dir, err := os.MkdirTemp(b.dataDir, "builtin-"+t.name+"-")
	if err != nil {
		return fmt.Errorf("build template %s: %w", t.name, err)
	}
	defer os.RemoveAll(dir)
	if err := writeDefinition(t, dir); err != nil {
		return fmt.Errorf("build template %s: %w", t.name, err)
	}
	df, err := os.ReadFile(filepath.Join(dir, "Dockerfile"))
	if err != nil {
		return fmt.Errorf("build template %s: %w", t.name, err)
	}
	b.log.Info("built-in template: building (steps whose inputs are unchanged come from the cache)", "template", t.name)
	start := time.Now()
	res, err := b.builder.Build(ctx, template.BuildRequest{
		Name: t.name, Dockerfile: string(df), ContextDir: dir, CPUCount: t.cpu, MemoryMB: t.memoryMB, DiskSizeMB: t.diskMB,
		StartCmd: t.startCmd, ReadyCmd: t.readyCmd,
	}, &progressLog{log: b.log.With("template", t.name)})
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
	b.log.Info("built-in template ready", "template", t.name, "build", res.BuildID,
		"took", time.Since(start).Round(time.Second), "steps", res.Steps, "cached", res.CacheHits, "ran", res.Ran)
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

// definition hashes what t's build depends on.
func (b *builtins) definition(t builtinTemplate) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "lelantos-builtin-v1\x00%s\x00%d/%d/%d\x00%s\x00%s\x00", t.name, t.cpu, t.memoryMB, t.diskMB, t.startCmd, t.readyCmd)
	err := fs.WalkDir(templates.FS, t.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := templates.FS.ReadFile(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", p, len(data))
		h.Write(data)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash template %s: %w", t.name, err)
	}
	cas, err := localCAs()
	if err != nil {
		return "", fmt.Errorf("hash template %s: %w", t.name, err)
	}
	for _, p := range cas {
		if err := hashInto(h, p); err != nil {
			return "", fmt.Errorf("hash template %s: %w", t.name, err)
		}
	}
	// The snapshot runs the binaries it was taken with.
	for _, p := range []string{b.envd, b.interpreter} {
		if p != "" {
			if err := hashInto(h, p); err != nil {
				return "", fmt.Errorf("hash template %s: %w", t.name, err)
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func hashInto(h hash.Hash, p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprintf(h, "%s\x00", filepath.Base(p))
	_, err = io.Copy(h, f)
	return err
}

// localCAs lists the host's locally added CA certificates, sorted.
func localCAs() ([]string, error) {
	ms, err := filepath.Glob(filepath.Join(localCADir, "*.crt"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range ms {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Size() < 1<<20 {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out, nil
}

// writeDefinition writes t's files, and the host's local CA certificates into
// local-ca/, into dir.
func writeDefinition(t builtinTemplate, dir string) error {
	err := fs.WalkDir(templates.FS, t.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p, t.dir), "/")
		dst := filepath.Join(dir, filepath.FromSlash(rel))
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		data, err := templates.FS.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, data, 0o644)
	})
	if err != nil {
		return err
	}
	cas, err := localCAs()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "local-ca"), 0o755); err != nil {
		return err
	}
	for _, p := range cas {
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "local-ca", path.Base(p)), data, 0o644); err != nil {
			return err
		}
	}
	return nil
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
