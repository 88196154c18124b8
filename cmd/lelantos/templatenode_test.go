package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/controlplane"
	"lelantos.dev/lelantos/internal/engine"
	"lelantos.dev/lelantos/internal/store"
	"lelantos.dev/lelantos/internal/template"
)

// fakeSandboxes is the node's list of sandboxes for the collection.
type fakeSandboxes struct {
	mu  sync.Mutex
	all []engine.Status
}

// TreesInUse lists the trees of the sandboxes set that are not dead.
func (f *fakeSandboxes) TreesInUse() ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, st := range f.all {
		if st.State != engine.StateDead {
			out = append(out, filepath.Clean(st.Spec.RootfsPath))
		}
	}
	return out, nil
}

func (f *fakeSandboxes) set(st ...engine.Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.all = st
}

// newTestTemplateNode is a templateNode over a real builder without a runtime:
// it can build Dockerfiles that run nothing (FROM scratch, COPY, ENV, ...).
func newTestTemplateNode(t *testing.T) (*templateNode, *fakeSandboxes, *store.DB, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the builder keeps file owners: needs root")
	}
	dir := t.TempDir()
	db, err := store.Open(context.Background(), filepath.Join(dir, "lelantos.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	// Versions handed out for a create are kept a moment only (TestTemplateNodeLease).
	b, err := template.NewBuilder(template.BuilderOptions{DataDir: dir, Store: db, LeaseTime: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	sbs := &fakeSandboxes{}
	contexts := filepath.Join(dir, "contexts")
	n, err := newTemplateNode(b, sbs, contexts, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n, sbs, db, contexts
}

// waitBuild waits until build id ends.
func waitBuild(t *testing.T, n *templateNode, id string) *controlplane.TemplateBuild {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := n.Build(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if b.Status != controlplane.BuildBuilding {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("build %s still running", id)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

const testDockerfile = `FROM scratch
COPY etc/passwd /etc/passwd
COPY app/ /app/
ENV GREETING=hello MODE=test
WORKDIR /app
USER user
`

func testContext(t *testing.T, version string) io.Reader {
	return bytes.NewReader(makeTar(t, true,
		entry{name: "etc/passwd", body: "root:x:0:0::/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n"},
		entry{name: "app/run.sh", body: "#!/bin/sh\necho " + version + "\n", mode: 0o755},
	))
}

func TestTemplateNodeBuildAndDetails(t *testing.T) {
	n, _, _, contexts := newTestTemplateNode(t)
	ctx := context.Background()
	id, err := n.StartBuild(ctx, controlplane.TemplateBuildRequest{Name: "web", Dockerfile: testDockerfile, Context: testContext(t, "v1")})
	if err != nil {
		t.Fatal(err)
	}
	if b := waitBuild(t, n, id); b.Status != controlplane.BuildReady || b.TemplateID != "web" || b.FinishedAt == nil {
		t.Fatalf("build: %+v", b)
	}
	d, err := n.TemplateDetails(ctx, "web", "")
	if err != nil {
		t.Fatal(err)
	}
	if d.DefaultUser != "user" || d.DefaultWorkdir != "/app" || d.Env["GREETING"] != "hello" || d.Env["MODE"] != "test" ||
		d.StartCmd != "" || d.SnapshotImage != "" {
		t.Errorf("details %+v", d)
	}
	if b, err := os.ReadFile(filepath.Join(d.Rootfs, "app/run.sh")); err != nil || !strings.Contains(string(b), "v1") {
		t.Errorf("the tree lacks the copied file: %q %v", b, err)
	}
	logs, err := n.BuildLogs(ctx, id, 0, 0)
	if err != nil || len(logs) < 6 || !strings.Contains(logs[0].Message, "Step 1/6") {
		t.Errorf("logs %+v %v", logs, err)
	}
	if tail, _ := n.BuildLogs(ctx, id, 1, 2); len(tail) != 2 || tail[0].Message != logs[1].Message {
		t.Errorf("logs from 1, limit 2: %+v", tail)
	}
	// The context goes once the build ends.
	deadline := time.Now().Add(10 * time.Second)
	for ents, _ := os.ReadDir(contexts); len(ents) > 0; ents, _ = os.ReadDir(contexts) {
		if time.Now().After(deadline) {
			t.Fatalf("build contexts left: %v", ents)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := n.TemplateDetails(ctx, "nope", ""); !errors.Is(err, controlplane.ErrNotFound) {
		t.Errorf("details of an unknown template: %v, want not found", err)
	}
	if _, err := n.Build(ctx, "00000000-0000-4000-8000-000000000000"); !errors.Is(err, controlplane.ErrNotFound) {
		t.Errorf("unknown build: %v, want not found", err)
	}
}

func TestTemplateNodeRefusals(t *testing.T) {
	n, _, _, contexts := newTestTemplateNode(t)
	tests := []struct {
		name string
		req  controlplane.TemplateBuildRequest
		want string
	}{
		{"instruction that cannot apply", controlplane.TemplateBuildRequest{Name: "x", Dockerfile: "FROM base\nRUN true\nONBUILD RUN true\n"},
			"dockerfile: Dockerfile line 3: ONBUILD"},
		{"bad step form", controlplane.TemplateBuildRequest{Name: "x", Spec: &controlplane.TemplateSpec{FromTemplate: "base",
			Steps: []controlplane.TemplateStep{{Type: "RUN", Args: []string{"true"}}, {Type: "EXPOSE", Args: []string{"80"}}}}}, "invalid template build: steps[1]: type"},
		{"no FROM", controlplane.TemplateBuildRequest{Name: "x", Dockerfile: "RUN true\n"}, "dockerfile: Dockerfile line 1"},
		{"context not an archive", controlplane.TemplateBuildRequest{Name: "x", Dockerfile: "FROM base\n",
			Context: strings.NewReader(strings.Repeat("not a tar ", 100))}, "context: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := n.StartBuild(context.Background(), tt.req)
			if !errors.Is(err, controlplane.ErrInvalidArgument) || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("err = %v, want invalid argument starting with %q", err, tt.want)
			}
			if ents, _ := os.ReadDir(contexts); len(ents) != 0 {
				t.Errorf("contexts left: %v", ents)
			}
		})
	}
}

func TestTemplateNodeCollectAndDelete(t *testing.T) {
	n, sbs, db, _ := newTestTemplateNode(t)
	ctx := context.Background()
	build := func(version string) string {
		id, err := n.StartBuild(ctx, controlplane.TemplateBuildRequest{Name: "web", Dockerfile: testDockerfile, Context: testContext(t, version)})
		if err != nil {
			t.Fatal(err)
		}
		if b := waitBuild(t, n, id); b.Status != controlplane.BuildReady {
			t.Fatalf("build %s: %+v", version, b)
		}
		return id
	}
	build("v1")
	first, err := n.TemplateDetails(ctx, "web", "")
	if err != nil {
		t.Fatal(err)
	}
	sbs.set(engine.Status{State: engine.StatePaused, Spec: engine.Spec{ID: "a", RootfsPath: first.Rootfs}},
		engine.Status{State: engine.StateDead, Spec: engine.Spec{ID: "b", RootfsPath: "/elsewhere"}})
	build("v2")
	if builds, err := n.Builds(ctx, "web"); err != nil || len(builds) != 2 {
		t.Errorf("builds: %v %v", builds, err)
	}
	n.collect(ctx)
	if _, err := os.Stat(first.Rootfs); err != nil {
		t.Fatalf("the first version went while a paused sandbox uses it: %v", err)
	}
	sbs.set()
	n.collect(ctx)
	if _, err := os.Stat(first.Rootfs); err == nil {
		t.Errorf("the first version stayed after its last sandbox went")
	}
	current, _ := n.TemplateDetails(ctx, "web", "")
	if _, err := os.Stat(current.Rootfs); err != nil {
		t.Fatalf("the current version went: %v", err)
	}

	used := func(string) (bool, error) { return true, nil }
	if err := n.Delete(ctx, "web", used); !errors.Is(err, controlplane.ErrConflict) {
		t.Errorf("delete while used: %v, want conflict", err)
	}
	if err := n.Delete(ctx, "web", func(string) (bool, error) { return false, nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetTemplate(ctx, "web"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the store keeps the template: %v", err)
	}
	if _, err := os.Stat(current.Rootfs); err == nil {
		t.Errorf("the template's files stayed")
	}
	if err := n.Delete(ctx, "web", nil); !errors.Is(err, controlplane.ErrNotFound) {
		t.Errorf("delete again: %v, want not found", err)
	}
}
