package process

import (
	"sync"

	pb "lelantos.dev/lelantos/internal/gen/envd/process"
)

// Output limits. A subscriber that falls further behind than maxQueued bytes
// stalls the process's output (as a full pipe would); output produced while
// nobody is attached is kept up to maxBacklog bytes, oldest dropped first.
const (
	maxQueued  = 4 << 20
	maxBacklog = 1 << 20
)

// queued is one output event with its payload size.
type queued struct {
	ev   *pb.ProcessEvent
	size int
}

// subscriber is one attached stream's queue of undelivered events.
type subscriber struct {
	queue []queued
	bytes int
	wake  chan struct{}
}

// fanout delivers a process's output to every attached stream and keeps what
// was produced while none was attached for the next one to attach.
type fanout struct {
	mu           sync.Mutex
	drained      *sync.Cond
	subs         map[*subscriber]struct{}
	backlog      []queued
	backlogBytes int
	end          *pb.ProcessEvent
}

func newFanout() *fanout {
	f := &fanout{subs: map[*subscriber]struct{}{}}
	f.drained = sync.NewCond(&f.mu)
	return f
}

// publish hands ev to every subscriber, or to the backlog when there is none.
// It blocks while a subscriber is more than maxQueued bytes behind.
func (f *fanout) publish(ev *pb.ProcessEvent, size int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for f.congested() {
		f.drained.Wait()
	}
	item := queued{ev: ev, size: size}
	if len(f.subs) == 0 {
		f.pushBacklog(item)
		return
	}
	for s := range f.subs {
		s.queue = append(s.queue, item)
		s.bytes += size
		notify(s)
	}
}

// congested reports whether some subscriber is too far behind. Callers hold mu.
func (f *fanout) congested() bool {
	for s := range f.subs {
		if s.bytes > maxQueued {
			return true
		}
	}
	return false
}

// pushBacklog appends to the backlog, dropping the oldest events beyond
// maxBacklog. Callers hold mu.
func (f *fanout) pushBacklog(items ...queued) {
	for _, it := range items {
		f.backlog = append(f.backlog, it)
		f.backlogBytes += it.size
	}
	drop := 0
	for f.backlogBytes > maxBacklog && drop < len(f.backlog) {
		f.backlogBytes -= f.backlog[drop].size
		drop++
	}
	for i := 0; i < drop; i++ {
		f.backlog[i] = queued{}
	}
	f.backlog = f.backlog[drop:]
}

// subscribe attaches a new stream; it starts with whatever the backlog holds.
func (f *fanout) subscribe() *subscriber {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := &subscriber{wake: make(chan struct{}, 1), queue: f.backlog}
	for _, it := range s.queue {
		s.bytes += it.size
	}
	f.backlog, f.backlogBytes = nil, 0
	f.subs[s] = struct{}{}
	notify(s)
	return s
}

// unsubscribe detaches s. When it was the last stream, what it had not taken yet
// goes back to the backlog so a later stream still receives it.
func (f *fanout) unsubscribe(s *subscriber) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.subs[s]; !ok {
		return
	}
	delete(f.subs, s)
	if len(f.subs) == 0 && len(s.queue) > 0 {
		rest := f.backlog
		f.backlog, f.backlogBytes = nil, 0
		f.pushBacklog(s.queue...)
		f.pushBacklog(rest...)
	}
	s.queue, s.bytes = nil, 0
	f.drained.Broadcast()
}

// take returns the events queued for s and, once the process has finished and
// s has taken everything, the end event.
func (f *fanout) take(s *subscriber) ([]queued, *pb.ProcessEvent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	items := s.queue
	s.queue, s.bytes = nil, 0
	if len(items) > 0 {
		f.drained.Broadcast()
		return items, nil
	}
	return nil, f.end
}

// requeue puts events s took but could not deliver back in front of its queue,
// so unsubscribe can hand them to the next stream.
func (f *fanout) requeue(s *subscriber, items []queued) {
	if len(items) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.subs[s]; !ok {
		return
	}
	s.queue = append(append([]queued(nil), items...), s.queue...)
	for _, it := range items {
		s.bytes += it.size
	}
}

// finish records the end event and wakes every subscriber. All output must have
// been published before.
func (f *fanout) finish(end *pb.ProcessEvent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.end = end
	for s := range f.subs {
		notify(s)
	}
}

// notify wakes a subscriber without blocking.
func notify(s *subscriber) {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}
