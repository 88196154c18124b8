package api

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"time"

	"lelantos.dev/lelantos/internal/controlplane"
	"lelantos.dev/lelantos/internal/store"
)

// fakeBuilder is the node's template builder in memory: builds stay
// "building" until finish is called, which registers the template in the
// store as the real builder does.
type fakeBuilder struct {
	mu       sync.Mutex
	db       *store.DB
	n        int
	builds   map[string]*controlplane.TemplateBuild
	logs     map[string][]controlplane.TemplateLogEntry
	requests map[string]controlplane.TemplateBuildRequest
	contexts map[string][]byte
	files    map[string][]byte            // by team/hash
	tags     map[string]map[string]string // template -> tag -> build, "default" aside
}

func newFakeBuilder(db *store.DB) *fakeBuilder {
	return &fakeBuilder{db: db, builds: map[string]*controlplane.TemplateBuild{},
		logs: map[string][]controlplane.TemplateLogEntry{}, requests: map[string]controlplane.TemplateBuildRequest{},
		contexts: map[string][]byte{}, files: map[string][]byte{}, tags: map[string]map[string]string{}}
}

// TemplateDetails knows no template: sandboxes get the store's record.
func (f *fakeBuilder) TemplateDetails(_ context.Context, id, _ string) (controlplane.TemplateDetails, error) {
	return controlplane.TemplateDetails{}, &controlplane.Error{Kind: controlplane.ErrNotFound, Message: "no details of " + id}
}

func (f *fakeBuilder) StartBuild(_ context.Context, req controlplane.TemplateBuildRequest) (string, error) {
	var data []byte
	if req.Context != nil {
		var err error
		if data, err = io.ReadAll(req.Context); err != nil {
			return "", &controlplane.Error{Kind: controlplane.ErrInvalidArgument, Message: "context: " + err.Error()}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	id := req.BuildID
	if id == "" {
		id = fmt.Sprintf("00000000-0000-4000-8000-%012d", f.n)
	}
	if b, ok := f.builds[id]; ok {
		if b.Status != controlplane.BuildWaiting {
			return "", &controlplane.Error{Kind: controlplane.ErrInvalidArgument, Message: "build " + id + " is not waiting"}
		}
		reserved := f.requests[id]
		req.CPUCount, req.MemoryMB, req.Tags = reserved.CPUCount, reserved.MemoryMB, reserved.Tags
	}
	req.Context = nil
	f.requests[id], f.contexts[id] = req, data
	f.builds[id] = &controlplane.TemplateBuild{BuildID: id, TemplateID: req.Name, Status: controlplane.BuildBuilding,
		StartedAt: time.Now().UTC()}
	return id, nil
}

// ReserveBuild records a waiting build.
func (f *fakeBuilder) ReserveBuild(_ context.Context, req controlplane.TemplateBuildRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests[req.BuildID] = req
	f.builds[req.BuildID] = &controlplane.TemplateBuild{BuildID: req.BuildID, TemplateID: req.Name, Status: controlplane.BuildWaiting,
		StartedAt: time.Now().UTC()}
	return nil
}

func (f *fakeBuilder) HasFile(_ context.Context, team, hash string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.files[team+"/"+hash]
	return ok, nil
}

func (f *fakeBuilder) PutFile(_ context.Context, team, hash string, r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.files[team+"/"+hash] = data
	return nil
}

func (f *fakeBuilder) Tags(ctx context.Context, id string) ([]controlplane.TemplateTag, error) {
	t, err := f.db.GetTemplate(ctx, id)
	if err != nil {
		return nil, &controlplane.Error{Kind: controlplane.ErrNotFound, Message: "no template " + id}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []controlplane.TemplateTag{{Tag: "default", BuildID: t.BuildID, CreatedAt: t.UpdatedAt}}
	for _, tag := range slices.Sorted(maps.Keys(f.tags[id])) {
		out = append(out, controlplane.TemplateTag{Tag: tag, BuildID: f.tags[id][tag], CreatedAt: t.UpdatedAt})
	}
	return out, nil
}

func (f *fakeBuilder) AssignTags(ctx context.Context, id, build string, tags []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.tags[id] == nil {
		f.tags[id] = map[string]string{}
	}
	for _, tag := range tags {
		if tag != "default" {
			f.tags[id][tag] = build
		}
	}
	return nil
}

func (f *fakeBuilder) RemoveTags(_ context.Context, id string, tags []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, tag := range tags {
		if _, ok := f.tags[id][tag]; !ok {
			return &controlplane.Error{Kind: controlplane.ErrNotFound, Message: "no tag " + tag}
		}
		delete(f.tags[id], tag)
	}
	return nil
}

// log appends entries to a build's log.
func (f *fakeBuilder) log(id string, entries ...controlplane.TemplateLogEntry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logs[id] = append(f.logs[id], entries...)
}

// finish ends a build: ready registers the template, else it fails with
// reason.
func (f *fakeBuilder) finish(id, reason string) error { return f.finishAt(id, reason, "") }

// finishAt is finish of a build that fails at step.
func (f *fakeBuilder) finishAt(id, reason, step string) error {
	f.mu.Lock()
	b, req := f.builds[id], f.requests[id]
	now := time.Now().UTC()
	b.FinishedAt = &now
	if reason != "" {
		b.Status, b.Reason, b.ReasonStep = controlplane.BuildError, reason, step
	} else {
		b.Status = controlplane.BuildReady
	}
	f.mu.Unlock()
	if reason != "" {
		return nil
	}
	if len(req.Tags) > 0 && req.Tags[0] != "default" {
		f.mu.Lock()
		if f.tags[req.Name] == nil {
			f.tags[req.Name] = map[string]string{}
		}
		for _, tag := range req.Tags {
			f.tags[req.Name][tag] = id
		}
		f.mu.Unlock()
	}
	return f.db.PutTemplate(context.Background(), &store.Template{ID: req.Name, BuildID: id, RootfsPath: "/t/" + req.Name,
		CPUCount: req.CPUCount, MemoryMB: req.MemoryMB, DiskSizeMB: req.DiskSizeMB, StartCmd: req.StartCmd,
		EnvdVersion: "0.6.4", Status: store.TemplateReady})
}

func (f *fakeBuilder) Build(_ context.Context, id string) (*controlplane.TemplateBuild, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.builds[id]
	if !ok {
		return nil, &controlplane.Error{Kind: controlplane.ErrNotFound, Message: "no build " + id}
	}
	c := *b
	return &c, nil
}

func (f *fakeBuilder) BuildLogs(_ context.Context, id string, offset, limit int) ([]controlplane.TemplateLogEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	logs := f.logs[id][min(offset, len(f.logs[id])):]
	if limit > 0 && len(logs) > limit {
		logs = logs[:limit]
	}
	return append([]controlplane.TemplateLogEntry(nil), logs...), nil
}

func (f *fakeBuilder) Builds(_ context.Context, templateID string) ([]*controlplane.TemplateBuild, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*controlplane.TemplateBuild
	for _, b := range f.builds {
		if b.TemplateID == templateID {
			c := *b
			out = append(out, &c)
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
		return &controlplane.Error{Kind: controlplane.ErrConflict, Message: "template " + id + " is in use"}
	}
	return f.db.DeleteTemplate(ctx, id)
}
