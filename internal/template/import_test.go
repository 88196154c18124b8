package template_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"lelantos.dev/lelantos/internal/store"
	"lelantos.dev/lelantos/internal/template"
)

// newPlainBuilder is a builder without an engine or runtime over a data
// directory of its own: it builds what runs nothing.
func newPlainBuilder(t *testing.T) (*template.Builder, *store.DB, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the builder keeps file owners: needs root")
	}
	dir := t.TempDir()
	db, err := store.Open(context.Background(), filepath.Join(dir, "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	b, err := template.NewBuilder(template.BuilderOptions{DataDir: dir, Store: db})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, db, dir
}

func inodeOf(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// TestImportTree: a tree one builder built, kept outside it with CopyTree,
// becomes a version of another builder (another data directory) with the same
// configuration, sharing the kept tree's files, whose inodes the import never
// writes.
func TestImportTree(t *testing.T) {
	ctx := context.Background()
	b1, _, _ := newPlainBuilder(t)
	bctx := writeContext(t, map[string]string{
		"etc/passwd":  "root:x:0:0::/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n",
		"app/run.sh*": "#!/bin/sh\necho hi\n",
	})
	res, err := b1.Build(ctx, template.BuildRequest{Name: "web", ContextDir: bctx,
		Dockerfile: "FROM scratch\nCOPY etc/passwd /etc/passwd\nCOPY app/ /app/\nENV GREETING=hello\nWORKDIR /app\nUSER user\nCMD [\"/app/run.sh\"]\n"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kept := filepath.Join(t.TempDir(), "kept")
	if err := template.CopyTree(ctx, res.Metadata.Rootfs, kept); err != nil {
		t.Fatal(err)
	}
	if err := template.CopyTree(ctx, res.Metadata.Rootfs, kept); !errors.Is(err, os.ErrExist) {
		t.Errorf("CopyTree onto an existing directory: %v", err)
	}
	marker := filepath.Join(kept, "tmp/.lelantos-tmp-on-disk")
	markerIno := inodeOf(t, marker)

	b2, db2, dir2 := newPlainBuilder(t)
	var log syncBuffer
	imp, err := b2.Import(ctx, template.ImportRequest{Name: "web", Tree: kept, Config: res.Metadata.TreeConfig(),
		CPUCount: 1, MemoryMB: 256, DiskSizeMB: 512}, &log)
	if err != nil {
		t.Fatalf("import: %v\n%s", err, log.String())
	}
	m := imp.Metadata
	if m.DefaultUser != "user" || m.DefaultWorkdir != "/app" || m.Env["GREETING"] != "hello" || !slices.Equal(m.Cmd, []string{"/app/run.sh"}) ||
		m.SnapshotDir != "" || m.CPUCount != 1 || m.MemoryMB != 256 || m.DiskSizeMB != 512 || imp.Ran != 0 {
		t.Errorf("imported metadata %+v (ran %d)", m, imp.Ran)
	}
	if !strings.HasPrefix(m.Rootfs, dir2+"/") {
		t.Errorf("the version's tree is %s", m.Rootfs)
	}
	if inodeOf(t, filepath.Join(m.Rootfs, "app/run.sh")) != inodeOf(t, filepath.Join(kept, "app/run.sh")) {
		t.Error("the version's files are not hard links to the kept tree's")
	}
	if inodeOf(t, marker) != markerIno || inodeOf(t, filepath.Join(m.Rootfs, "tmp/.lelantos-tmp-on-disk")) == markerIno {
		t.Error("the import wrote a file of the kept tree instead of replacing its own")
	}
	tpl, err := db2.GetTemplate(ctx, "web")
	if err != nil || tpl.BuildID != imp.BuildID || tpl.Status != store.TemplateReady || tpl.RootfsPath != m.Rootfs {
		t.Errorf("store: %+v, %v", tpl, err)
	}
	if rec, err := b2.BuildStatus(imp.BuildID); err != nil || rec.Status != template.BuildReady {
		t.Errorf("build record: %+v, %v", rec, err)
	}
	if !strings.Contains(log.String(), "imported") {
		t.Errorf("log:\n%s", log.String())
	}
	if lm, err := b2.Lookup(ctx, "web"); err != nil || lm.Rootfs != m.Rootfs || lm.DefaultUser != "user" {
		t.Errorf("lookup: %+v, %v", lm, err)
	}
}

// TestImportRefusals: requests that cannot be imported are ErrInvalid, and
// leave no template behind.
func TestImportRefusals(t *testing.T) {
	b, db, _ := newPlainBuilder(t)
	tree := t.TempDir()
	file := filepath.Join(tree, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		req  template.ImportRequest
	}{
		{"relative tree", template.ImportRequest{Name: "web", Tree: "rootfs"}},
		{"missing tree", template.ImportRequest{Name: "web", Tree: filepath.Join(tree, "missing")}},
		{"a file as the tree", template.ImportRequest{Name: "web", Tree: file}},
		{"bad name", template.ImportRequest{Name: "Web App", Tree: tree}},
		{"reserved name", template.ImportRequest{Name: "base", Tree: tree}},
		{"ready command without a start command", template.ImportRequest{Name: "web", Tree: tree, ReadyCmd: "true"}},
		{"start command without an engine", template.ImportRequest{Name: "web", Tree: tree, StartCmd: "sleep 1"}},
		{"memory out of range", template.ImportRequest{Name: "web", Tree: tree, MemoryMB: 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := b.Import(context.Background(), c.req, nil); !errors.Is(err, template.ErrInvalid) {
				t.Errorf("import: %v, want ErrInvalid", err)
			}
		})
	}
	if _, err := db.GetTemplate(context.Background(), "web"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused import left a template: %v", err)
	}
}
