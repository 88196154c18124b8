package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"lelantos.dev/lelantos/templates"
)

// hashInputs are what a built-in template's hashes are made of, in files a
// case may change.
type hashInputs struct {
	b   *builtins
	t   builtinTemplate
	dir string
}

func newHashInputs(t *testing.T) *hashInputs {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"ca", "base-a", "base-b"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h := &hashInputs{dir: dir, t: builtinTemplate{name: "tiny", dir: "tiny", cpu: 1, memoryMB: 256, diskMB: 512,
		startCmd: "sleep infinity", readyCmd: "true"}}
	h.write(t, "envd", "envd v1")
	h.write(t, "interp", "interpreter v1")
	h.write(t, "base-a/"+baseCompleteMarker, "")
	h.write(t, "base-b/"+baseCompleteMarker, "")
	h.b = &builtins{envd: filepath.Join(dir, "envd"), interpreter: filepath.Join(dir, "interp"), caDir: filepath.Join(dir, "ca"),
		baseRootfs: filepath.Join(dir, "base-a"), defs: builtinDefs{templates: []builtinTemplate{h.t}, fsys: fstest.MapFS{
			"tiny/Dockerfile": {Data: []byte("FROM base\nCOPY a.txt /a.txt\n")},
			"tiny/a.txt":      {Data: []byte("a\n")},
		}}}
	return h
}

func (h *hashInputs) write(t *testing.T, name, content string) {
	t.Helper()
	p := filepath.Join(h.dir, name)
	_ = os.Remove(p) // a new inode, as a rebuild makes
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (h *hashInputs) hashes(t *testing.T) (tree, def string) {
	t.Helper()
	tree, err := h.b.treeHash(h.t)
	if err != nil {
		t.Fatal(err)
	}
	def, err = h.b.definition(h.t, tree)
	if err != nil {
		t.Fatal(err)
	}
	return tree, def
}

// TestBuiltinHashes: the tree hash, which names a template's tree in the
// cache every data directory shares, changes with what changes the tree and
// only with that; the definition, which decides whether a data directory's
// version is current, changes with the tree and with what changes the
// snapshot.
func TestBuiltinHashes(t *testing.T) {
	cases := []struct {
		name       string
		change     func(t *testing.T, h *hashInputs)
		tree, defn bool // changed
	}{
		{"nothing", func(*testing.T, *hashInputs) {}, false, false},
		{"another interpreter binary", func(t *testing.T, h *hashInputs) { h.write(t, "interp", "interpreter v2") }, false, true},
		{"another envd binary", func(t *testing.T, h *hashInputs) { h.write(t, "envd", "envd v2") }, false, true},
		{"other sizes", func(_ *testing.T, h *hashInputs) { h.t.memoryMB++ }, false, true},
		{"another start command", func(_ *testing.T, h *hashInputs) { h.t.startCmd = "sleep 1d" }, false, true},
		{"another ready command", func(_ *testing.T, h *hashInputs) { h.t.readyCmd = "test -f /x" }, false, true},
		{"a file of the definition", func(_ *testing.T, h *hashInputs) {
			h.b.defs.fsys.(fstest.MapFS)["tiny/a.txt"] = &fstest.MapFile{Data: []byte("b\n")}
		}, true, true},
		{"a file added to the definition", func(_ *testing.T, h *hashInputs) {
			h.b.defs.fsys.(fstest.MapFS)["tiny/b.txt"] = &fstest.MapFile{Data: []byte("b\n")}
		}, true, true},
		{"the Dockerfile", func(_ *testing.T, h *hashInputs) {
			h.b.defs.fsys.(fstest.MapFS)["tiny/Dockerfile"] = &fstest.MapFile{Data: []byte("FROM base\nCOPY a.txt /b.txt\n")}
		}, true, true},
		{"a local CA certificate added", func(t *testing.T, h *hashInputs) { h.write(t, "ca/local.crt", "cert") }, true, true},
		{"the base tree rebuilt in place", func(t *testing.T, h *hashInputs) { h.write(t, "base-a/"+baseCompleteMarker, "") }, true, true},
		{"another base tree", func(_ *testing.T, h *hashInputs) { h.b.baseRootfs = filepath.Join(h.dir, "base-b") }, true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHashInputs(t)
			tree, def := h.hashes(t)
			c.change(t, h)
			tree2, def2 := h.hashes(t)
			if (tree2 != tree) != c.tree || (def2 != def) != c.defn {
				t.Errorf("tree hash changed %v (want %v), definition changed %v (want %v)", tree2 != tree, c.tree, def2 != def, c.defn)
			}
		})
	}
}

// TestBuiltinTreeHashOfCodeInterpreter: the embedded definition hashes, and
// does not depend on the binaries its snapshot runs.
func TestBuiltinTreeHashOfCodeInterpreter(t *testing.T) {
	h := newHashInputs(t)
	h.b.defs = defaultBuiltinDefs()
	h.t = builtinTemplates[0]
	tree, def := h.hashes(t)
	h.write(t, "interp", "interpreter v2")
	tree2, def2 := h.hashes(t)
	if tree != tree2 || def == def2 || len(tree) != 64 {
		t.Errorf("tree %s -> %s, definition %s -> %s", tree, tree2, def, def2)
	}
}

func TestWriteBuiltinDefinition(t *testing.T) {
	dir := t.TempDir()
	if err := writeDefinition(templates.FS, builtinTemplates[0], localCADir, dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"Dockerfile", "kernels/python3/kernel.json", "kernels/bash/kernel.json", "ipython/startup/0002_data.py",
		"python/lelantos_charts.py", "local-ca/README"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("the context lacks %s: %v", f, err)
		}
	}
	df, _ := os.ReadFile(filepath.Join(dir, "Dockerfile"))
	if !strings.HasPrefix(strings.TrimSpace(stripComments(string(df))), "FROM base") {
		t.Errorf("the Dockerfile does not start FROM base")
	}
}

func stripComments(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestBuiltinProgressLog(t *testing.T) {
	var buf bytes.Buffer
	p := &progressLog{log: slog.New(slog.NewTextHandler(&buf, nil))}
	for _, chunk := range []string{"Step 1/2 : FROM base\nGet:1 http://deb", "ian/ pkg\n ---> layer ab", "c (1s)\n"} {
		if _, err := p.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	out := buf.String()
	if !strings.Contains(out, "Step 1/2 : FROM base") || !strings.Contains(out, "---> layer abc (1s)") || strings.Contains(out, "Get:1") {
		t.Fatalf("progress log:\n%s", out)
	}
}
