package interpreter

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// KeepaliveInterval is how long the stream may stay silent before a keepalive
// line: a client that gave up is noticed when a write fails.
const KeepaliveInterval = 5 * time.Second

// writeTimeout bounds one write to a client that does not read.
const writeTimeout = 30 * time.Second

// stream writes NDJSON lines to one client, flushing each, with keepalives
// while nothing else is written. When a write fails the client is gone:
// cancel is called and later lines are dropped.
type stream struct {
	w      http.ResponseWriter
	rc     *http.ResponseController
	cancel context.CancelFunc

	mu   sync.Mutex
	last time.Time
	gone bool
	stop chan struct{}
	done chan struct{}
}

// newStream sends the response's headers and starts the keepalives.
func newStream(w http.ResponseWriter, cancel context.CancelFunc) *stream {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	s := &stream{w: w, rc: http.NewResponseController(w), cancel: cancel, last: time.Now(),
		stop: make(chan struct{}), done: make(chan struct{})}
	s.mu.Lock()
	s.flushLocked()
	s.mu.Unlock()
	go s.keepalive()
	return s
}

func (s *stream) keepalive() {
	defer close(s.done)
	t := time.NewTicker(KeepaliveInterval / 5)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.mu.Lock()
			if !s.gone && time.Since(s.last) >= KeepaliveInterval {
				s.writeLocked(simpleLine(LineKeepalive))
			}
			s.mu.Unlock()
		}
	}
}

// line writes one line.
func (s *stream) line(b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.gone {
		s.writeLocked(b)
	}
}

func (s *stream) writeLocked(b []byte) {
	_ = s.rc.SetWriteDeadline(time.Now().Add(writeTimeout))
	buf := make([]byte, 0, len(b)+1)
	buf = append(append(buf, b...), '\n')
	if _, err := s.w.Write(buf); err != nil {
		s.goneLocked()
		return
	}
	s.flushLocked()
	s.last = time.Now()
}

func (s *stream) flushLocked() {
	if err := s.rc.Flush(); err != nil {
		s.goneLocked()
	}
}

func (s *stream) goneLocked() {
	s.gone = true
	s.cancel()
}

// close stops the keepalives; the handler then returns, ending the response.
func (s *stream) close() {
	close(s.stop)
	<-s.done
	_ = s.rc.SetWriteDeadline(time.Time{})
}
