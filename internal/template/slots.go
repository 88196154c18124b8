package template

import (
	"context"
	"sync"
)

// slots bounds the builds of a node: n run at once, up to q more wait in line, and
// any beyond are refused with ErrBusy.
type slots struct {
	turns chan struct{} // one token per running build
	mu    sync.Mutex
	held  int // tickets out: running and waiting builds
	max   int // n + q
}

func newSlots(n, q int) *slots {
	return &slots{turns: make(chan struct{}, n), max: n + q}
}

// ticket is one build's place: in line, then running.
type ticket struct {
	s                 *slots
	running, released bool
}

// take gives a place in line, or ErrBusy when the line is full. A free turn
// is taken at once, so that builds run in the order they were taken: one
// taken later cannot run ahead of one whose goroutine has yet to wait.
func (s *slots) take() (*ticket, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held >= s.max {
		return nil, ErrBusy
	}
	s.held++
	t := &ticket{s: s}
	select {
	case s.turns <- struct{}{}:
		t.running = true
	default:
	}
	return t, nil
}

// wait blocks until the ticket's build may run; waiting is called first when it
// must wait.
func (t *ticket) wait(ctx context.Context, waiting func()) error {
	if t.running {
		return nil
	}
	select {
	case t.s.turns <- struct{}{}:
		t.running = true
		return nil
	default:
	}
	waiting()
	select {
	case t.s.turns <- struct{}{}:
		t.running = true
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// release gives the place back; calling it again does nothing.
func (t *ticket) release() {
	if t.released {
		return
	}
	t.released = true
	if t.running {
		<-t.s.turns
	}
	t.s.mu.Lock()
	t.s.held--
	t.s.mu.Unlock()
}
