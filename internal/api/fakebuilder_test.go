package api

import (
	"context"
	"fmt"
	"io"
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
}

func newFakeBuilder(db *store.DB) *fakeBuilder {
	return &fakeBuilder{db: db, builds: map[string]*controlplane.TemplateBuild{},
		logs: map[string][]controlplane.TemplateLogEntry{}, requests: map[string]controlplane.TemplateBuildRequest{},
		contexts: map[string][]byte{}}
}

// TemplateDetails knows no template: sandboxes get the store's record.
func (f *fakeBuilder) TemplateDetails(_ context.Context, id string) (controlplane.TemplateDetails, error) {
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
	req.Context = nil
	f.requests[id], f.contexts[id] = req, data
	f.builds[id] = &controlplane.TemplateBuild{BuildID: id, TemplateID: req.Name, Status: controlplane.BuildBuilding,
		StartedAt: time.Now().UTC()}
	return id, nil
}

// log appends entries to a build's log.
func (f *fakeBuilder) log(id string, entries ...controlplane.TemplateLogEntry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logs[id] = append(f.logs[id], entries...)
}

// finish ends a build: ready registers the template, else it fails with
// reason.
func (f *fakeBuilder) finish(id, reason string) error {
	f.mu.Lock()
	b, req := f.builds[id], f.requests[id]
	now := time.Now().UTC()
	b.FinishedAt = &now
	if reason != "" {
		b.Status, b.Reason = controlplane.BuildError, reason
	} else {
		b.Status = controlplane.BuildReady
	}
	f.mu.Unlock()
	if reason != "" {
		return nil
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
