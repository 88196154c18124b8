package engine

import (
	"fmt"
	"sync"

	"github.com/fsnotify/fsnotify"
)

// consoleWatch wakes log pumps when their sandbox writes to its console, so that a
// sandbox writing as fast as it can is caught within milliseconds, not at the next
// LogInterval. One inotify instance serves the whole engine: instances are a scarce
// per-user resource, watches are not.
type consoleWatch struct {
	w    *fsnotify.Watcher
	done chan struct{}

	mu   sync.Mutex
	subs map[string]chan struct{} // by console path
}

func newConsoleWatch() (*consoleWatch, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch consoles: %w", err)
	}
	c := &consoleWatch{w: w, done: make(chan struct{}), subs: map[string]chan struct{}{}}
	go c.run()
	return c, nil
}

func (c *consoleWatch) run() {
	defer close(c.done)
	for {
		select {
		case ev, ok := <-c.w.Events:
			if !ok {
				return
			}
			if ev.Has(fsnotify.Write) {
				c.mu.Lock()
				ch := c.subs[ev.Name]
				c.mu.Unlock()
				poke(ch)
			}
		case _, ok := <-c.w.Errors:
			if !ok {
				return
			}
			// The event queue overflowed: anyone may have written.
			c.mu.Lock()
			for _, ch := range c.subs {
				poke(ch)
			}
			c.mu.Unlock()
		}
	}
}

// poke wakes ch's reader unless a wake is already pending.
func poke(ch chan struct{}) {
	if ch == nil {
		return
	}
	select {
	case ch <- struct{}{}:
	default:
	}
}

// consoleSub is one console's watch. A pump pauses it while it polls a console
// that keeps growing, so that a flood of writes is not also a flood of events.
type consoleSub struct {
	c    *consoleWatch
	path string
	ch   chan struct{}
}

// subscribe watches path; its wake channel receives a value after path is written
// to. A nil watch fails.
func (c *consoleWatch) subscribe(path string) (*consoleSub, error) {
	if c == nil {
		return nil, fmt.Errorf("watch console %s: no watcher", path)
	}
	s := &consoleSub{c: c, path: path, ch: make(chan struct{}, 1)}
	c.mu.Lock()
	c.subs[path] = s.ch
	c.mu.Unlock()
	if err := s.resume(); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// wake receives a value after the console is written to, unless paused.
func (s *consoleSub) wake() <-chan struct{} { return s.ch }

// pause stops events until resume; it fails harmlessly when the file is gone.
func (s *consoleSub) pause() { _ = s.c.w.Remove(s.path) }

// resume starts events again.
func (s *consoleSub) resume() error {
	if err := s.c.w.Add(s.path); err != nil {
		return fmt.Errorf("watch console %s: %w", s.path, err)
	}
	return nil
}

// close ends the watch.
func (s *consoleSub) close() {
	s.pause()
	s.c.mu.Lock()
	if s.c.subs[s.path] == s.ch {
		delete(s.c.subs, s.path)
	}
	s.c.mu.Unlock()
}

// close stops the watcher; a nil watch is a no-op.
func (c *consoleWatch) close() {
	if c == nil {
		return
	}
	_ = c.w.Close()
	<-c.done
}
