package controlplane

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	agentv1 "lelantos.dev/lelantos/internal/gen/agent/v1"
	"lelantos.dev/lelantos/internal/store"
)

// fakeBuilder is a TemplateSource and TemplateBuilder in memory.
type fakeBuilder struct {
	mu         sync.Mutex
	details    map[string]TemplateDetails
	detailsErr error
	builds     map[string]*TemplateBuild
	logs       map[string][]TemplateLogEntry
	started    []TemplateBuildRequest
	startErr   error
	deleted    []string
	db         *store.DB
	reserved   map[string]TemplateBuildRequest
	files      map[string]bool              // team/hash
	tags       map[string]map[string]string // template -> tag -> build
	detailsFor []string                     // the builds TemplateDetails was asked for
}

func newFakeBuilder(db *store.DB) *fakeBuilder {
	return &fakeBuilder{db: db, details: map[string]TemplateDetails{}, builds: map[string]*TemplateBuild{},
		logs: map[string][]TemplateLogEntry{}, reserved: map[string]TemplateBuildRequest{}, files: map[string]bool{},
		tags: map[string]map[string]string{}}
}

func (f *fakeBuilder) TemplateDetails(_ context.Context, id, build string) (TemplateDetails, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.detailsFor = append(f.detailsFor, build)
	if f.detailsErr != nil {
		return TemplateDetails{}, f.detailsErr
	}
	d, ok := f.details[id]
	if !ok {
		return TemplateDetails{}, newError(ErrNotFound, "no details of %s", id)
	}
	return d, nil
}

func (f *fakeBuilder) StartBuild(_ context.Context, req TemplateBuildRequest) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.startErr != nil {
		return "", f.startErr
	}
	id := req.BuildID
	if b, ok := f.builds[id]; ok && b.Status != BuildWaiting {
		return "", newError(ErrInvalidArgument, "build %s is not waiting", id)
	}
	f.started = append(f.started, req)
	f.builds[id] = &TemplateBuild{BuildID: id, TemplateID: req.Name, Status: BuildBuilding, StartedAt: time.Now()}
	return id, nil
}

// finish ends build id with status; a ready build registers its template in
// the store as the real builder does (knowing nothing of teams).
func (f *fakeBuilder) finish(t testing.TB, id, status string) {
	t.Helper()
	f.mu.Lock()
	b := f.builds[id]
	now := time.Now()
	b.Status, b.FinishedAt = status, &now
	f.mu.Unlock()
	if status != BuildReady {
		return
	}
	if err := f.db.PutTemplate(context.Background(), &store.Template{ID: b.TemplateID, BuildID: id,
		RootfsPath: "/t/" + b.TemplateID, Status: store.TemplateReady}); err != nil {
		t.Fatalf("register template of build %s: %v", id, err)
	}
}

func (f *fakeBuilder) Build(_ context.Context, id string) (*TemplateBuild, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.builds[id]
	if !ok {
		return nil, newError(ErrNotFound, "no build %s", id)
	}
	c := *b
	return &c, nil
}

func (f *fakeBuilder) BuildLogs(_ context.Context, id string, offset, limit int) ([]TemplateLogEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	logs := f.logs[id]
	logs = logs[min(offset, len(logs)):]
	if limit > 0 && len(logs) > limit {
		logs = logs[:limit]
	}
	return logs, nil
}

func (f *fakeBuilder) Builds(_ context.Context, id string) ([]*TemplateBuild, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*TemplateBuild
	for _, b := range f.builds {
		if b.TemplateID == id {
			out = append(out, b)
		}
	}
	return out, nil
}

func (f *fakeBuilder) Delete(ctx context.Context, id string, inUse func(string) (bool, error)) error {
	used, err := inUse(id)
	if err != nil {
		return err
	}
	if used {
		return newError(ErrConflict, "template %s is in use", id)
	}
	f.mu.Lock()
	f.deleted = append(f.deleted, id)
	f.mu.Unlock()
	return f.db.DeleteTemplate(ctx, id)
}

func (f *fakeBuilder) ReserveBuild(_ context.Context, req TemplateBuildRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reserved[req.BuildID] = req
	f.builds[req.BuildID] = &TemplateBuild{BuildID: req.BuildID, TemplateID: req.Name, Status: BuildWaiting, StartedAt: time.Now()}
	return nil
}

func (f *fakeBuilder) HasFile(_ context.Context, team, hash string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.files[team+"/"+hash], nil
}

func (f *fakeBuilder) PutFile(_ context.Context, team, hash string, _ io.Reader) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.files[team+"/"+hash] = true
	return nil
}

func (f *fakeBuilder) Tags(ctx context.Context, id string) ([]TemplateTag, error) {
	t, err := f.db.GetTemplate(ctx, id)
	if err != nil {
		return nil, newError(ErrNotFound, "no template %s", id)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []TemplateTag{{Tag: DefaultTag, BuildID: t.BuildID}}
	for tag, b := range f.tags[id] {
		out = append(out, TemplateTag{Tag: tag, BuildID: b})
	}
	return out, nil
}

func (f *fakeBuilder) AssignTags(_ context.Context, id, build string, tags []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.tags[id] == nil {
		f.tags[id] = map[string]string{}
	}
	for _, tag := range tags {
		f.tags[id][tag] = build
	}
	return nil
}

func (f *fakeBuilder) RemoveTags(_ context.Context, id string, tags []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, tag := range tags {
		delete(f.tags[id], tag)
	}
	return nil
}

// templateHarness is the harness's store and node under a Service with a fake
// builder.
func templateHarness(t *testing.T) (*harness, *fakeBuilder) {
	t.Helper()
	h := newHarness(t)
	fb := newFakeBuilder(h.db)
	svc, err := New(Config{Clock: h.clock.Now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Templates: fb, Builder: fb}, h.db, h.node)
	if err != nil {
		t.Fatal(err)
	}
	h.svc = svc
	return h, fb
}

// nodeSpec is the spec the node got for sandbox id.
func nodeSpec(t *testing.T, h *harness, id string) *agentv1.SandboxSpec {
	t.Helper()
	resp, err := h.node.ListSandboxes(context.Background(), connect.NewRequest(&agentv1.ListSandboxesRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range resp.Msg.Sandboxes {
		if st.SandboxId == id {
			return st.Spec
		}
	}
	t.Fatalf("sandbox %s is not on the node", id)
	return nil
}

func TestCreateWithTemplateDetails(t *testing.T) {
	bigDetails := TemplateDetails{
		Rootfs: "/v/big/b2/rootfs", DefaultUser: "user", DefaultWorkdir: "/app",
		Env: map[string]string{"A": "template", "B": "template"}, StartCmd: "serve --port 8080",
		SnapshotImage: "/v/big/b2/snapshot",
	}
	tests := []struct {
		name    string
		details map[string]TemplateDetails
		req     CreateRequest
		want    *agentv1.SandboxSpec
	}{
		{name: "user env wins over template env", details: map[string]TemplateDetails{"big": bigDetails},
			req: CreateRequest{TemplateID: "large", EnvVars: map[string]string{"B": "user", "C": "user"}},
			want: &agentv1.SandboxSpec{TemplateRootfs: "/v/big/b2/rootfs", DefaultUser: "user", DefaultWorkdir: "/app",
				EnvVars:  map[string]string{"A": "template", "B": "user", "C": "user"},
				StartCmd: "serve --port 8080", SnapshotImage: "/v/big/b2/snapshot"}},
		{name: "runc runs the start command without the snapshot", details: map[string]TemplateDetails{"big": bigDetails},
			req: CreateRequest{TemplateID: "big", RuntimeClass: RuntimeRunc},
			want: &agentv1.SandboxSpec{TemplateRootfs: "/v/big/b2/rootfs", DefaultUser: "user", DefaultWorkdir: "/app",
				EnvVars: map[string]string{"A": "template", "B": "template"}, StartCmd: "serve --port 8080"}},
		{name: "a template without details gets the store's record", details: map[string]TemplateDetails{},
			req: CreateRequest{TemplateID: "big", EnvVars: map[string]string{"B": "user"}},
			want: &agentv1.SandboxSpec{TemplateRootfs: "/var/lib/lelantos/big", EnvVars: map[string]string{"B": "user"},
				StartCmd: "serve"}},
		{name: "base", details: map[string]TemplateDetails{},
			req:  CreateRequest{},
			want: &agentv1.SandboxSpec{TemplateRootfs: "/var/lib/lelantos/base"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, fb := templateHarness(t)
			fb.details = tt.details
			sb := h.create(t, tt.req)
			got := nodeSpec(t, h, sb.ID)
			if got.TemplateRootfs != tt.want.TemplateRootfs || got.DefaultUser != tt.want.DefaultUser ||
				got.DefaultWorkdir != tt.want.DefaultWorkdir || got.StartCmd != tt.want.StartCmd ||
				got.SnapshotImage != tt.want.SnapshotImage || !maps.Equal(got.EnvVars, tt.want.EnvVars) {
				t.Errorf("node spec: rootfs %q user %q workdir %q start %q snapshot %q env %v\nwant %v",
					got.TemplateRootfs, got.DefaultUser, got.DefaultWorkdir, got.StartCmd, got.SnapshotImage, got.EnvVars, tt.want)
			}
			if stored := h.stored(t, sb.ID); !maps.Equal(stored.EnvVars, tt.req.EnvVars) {
				t.Errorf("stored env %v, want only the request's %v", stored.EnvVars, tt.req.EnvVars)
			}
		})
	}
}

func TestCreateTemplateDetailsFailure(t *testing.T) {
	h, fb := templateHarness(t)
	fb.detailsErr = errors.New("disk on fire")
	_, err := h.svc.Create(context.Background(), defTeam, CreateRequest{TemplateID: "big"})
	if err == nil || !strings.Contains(err.Error(), "disk on fire") || errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("err = %v, want an internal error with the cause", err)
	}
	if all, _, _ := h.db.ListSandboxes(context.Background(), storeFilterAll()); len(all) != 0 {
		t.Errorf("stored %v, want nothing", all)
	}
}
