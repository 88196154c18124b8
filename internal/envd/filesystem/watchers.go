package filesystem

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"

	"connectrpc.com/connect"

	pb "lelantos.dev/lelantos/internal/gen/envd/filesystem"
)

// Limits of polled watchers.
const (
	maxWatchers      = 1024
	maxPendingEvents = 10000
)

// polled is a watcher whose events wait for GetWatcherEvents.
type polled struct {
	w      *watcher
	cancel context.CancelFunc
	mu     sync.Mutex
	events []*pb.FilesystemEvent
	err    error
}

// registry holds the polled watchers by id.
type registry struct {
	mu    sync.Mutex
	items map[string]*polled
}

func newRegistry() *registry { return &registry{items: map[string]*polled{}} }

// add starts collecting events from w and returns its id.
func (r *registry) add(w *watcher) (string, error) {
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("watcher id: %w", err)
	}
	id := hex.EncodeToString(raw[:])
	ctx, cancel := context.WithCancel(context.Background())
	p := &polled{w: w, cancel: cancel}
	r.mu.Lock()
	if len(r.items) >= maxWatchers {
		r.mu.Unlock()
		cancel()
		return "", connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("at most %d watchers may exist", maxWatchers))
	}
	r.items[id] = p
	r.mu.Unlock()
	go func() {
		err := w.run(ctx, func(ev *pb.FilesystemEvent) error {
			p.mu.Lock()
			defer p.mu.Unlock()
			p.events = append(p.events, ev)
			if len(p.events) > maxPendingEvents {
				p.events = p.events[len(p.events)-maxPendingEvents:]
			}
			return nil
		}, 0, nil)
		if err != nil && !errors.Is(err, context.Canceled) {
			p.mu.Lock()
			p.err = err
			p.mu.Unlock()
		}
	}()
	return id, nil
}

// drain returns and clears the events of a watcher; a failed watcher's error is
// returned once its events are gone.
func (r *registry) drain(id string) ([]*pb.FilesystemEvent, error) {
	r.mu.Lock()
	p, ok := r.items[id]
	r.mu.Unlock()
	if !ok {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("watcher %q not found", id))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	events := p.events
	p.events = nil
	if len(events) == 0 && p.err != nil {
		return nil, p.err
	}
	return events, nil
}

// remove stops and forgets a watcher.
func (r *registry) remove(id string) error {
	r.mu.Lock()
	p, ok := r.items[id]
	delete(r.items, id)
	r.mu.Unlock()
	if !ok {
		return connect.NewError(connect.CodeNotFound, fmt.Errorf("watcher %q not found", id))
	}
	p.cancel()
	p.w.close()
	return nil
}

// closeAll stops every watcher.
func (r *registry) closeAll() {
	r.mu.Lock()
	ids := make([]string, 0, len(r.items))
	for id := range r.items {
		ids = append(ids, id)
	}
	r.mu.Unlock()
	for _, id := range ids {
		_ = r.remove(id)
	}
}

// CreateWatcher starts a polled watcher.
func (s *Service) CreateWatcher(_ context.Context, req *connect.Request[pb.CreateWatcherRequest]) (*connect.Response[pb.CreateWatcherResponse], error) {
	u, path, err := s.resolve(req.Header(), req.Msg.GetPath())
	if err != nil {
		return nil, err
	}
	w, err := newWatcher(u, path, req.Msg.GetRecursive(), req.Msg.GetIncludeEntry(), req.Msg.GetAllowNetworkMounts())
	if err != nil {
		return nil, err
	}
	id, err := s.watchers.add(w)
	if err != nil {
		w.close()
		return nil, err
	}
	return connect.NewResponse(&pb.CreateWatcherResponse{WatcherId: id}), nil
}

// GetWatcherEvents returns and clears what a polled watcher collected.
func (s *Service) GetWatcherEvents(_ context.Context, req *connect.Request[pb.GetWatcherEventsRequest]) (*connect.Response[pb.GetWatcherEventsResponse], error) {
	events, err := s.watchers.drain(req.Msg.GetWatcherId())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.GetWatcherEventsResponse{Events: events}), nil
}

// RemoveWatcher stops a polled watcher.
func (s *Service) RemoveWatcher(_ context.Context, req *connect.Request[pb.RemoveWatcherRequest]) (*connect.Response[pb.RemoveWatcherResponse], error) {
	if err := s.watchers.remove(req.Msg.GetWatcherId()); err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.RemoveWatcherResponse{}), nil
}
