package engine

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The runtime appends the sandbox's console output to consoleFile, which the engine
// treats as a spool. Every LogInterval a drain moves the newest whole lines that its
// budget takes into the log; older unread output is dropped, and the log says how
// much went. The disk space of what was read or dropped is given back by punching
// those blocks out of the file (FALLOC_FL_PUNCH_HOLE) and, now and then, cutting
// the punched front off (FALLOC_FL_COLLAPSE_RANGE) so that the file's length stays
// bounded too; appends in progress survive both. A watch on the file wakes a trim
// as soon as it grows, which drops unread output beyond caps.spoolMax, so the
// spool stays near that size however fast the sandbox writes, as long as the pump
// gets the CPU and the disk it asks for.
//
// offsetFile holds where the log has got to in consoleFile, and how many bytes were
// dropped since the last note, so a restarted node goes on where the last one
// stopped. It is written before the front of consoleFile is cut: a crash in between
// repeats some lines rather than skip unread ones.

// consoleSpool is the pump's position in a sandbox's console file. The drain and
// the trim run on goroutines of their own, so that a drain waiting for the disk
// while it writes the log does not hold up the trim; mu orders their steps.
type consoleSpool struct {
	l  *sandboxLog
	mu sync.Mutex
	// offset is that of the first byte not in the log, in the file as it is now;
	// reading is where a drain under way will have got to (0: none is).
	offset, reading int64
	dropped         int64 // bytes skipped since the last note in the log
	punched         int64 // the file's blocks before this are punched out
	noPunch         bool  // the filesystem cannot punch out blocks
	noCut           bool  // the filesystem cannot cut the front of a file
}

// spoolCheckGap is the least time between two looks at a growing console.
const spoolCheckGap = 10 * time.Millisecond

// pollEvery is how often a pump without a watch looks at its console's size.
const pollEvery = 50 * time.Millisecond

// collapseAt is the console file's length from which its punched front is cut off.
const collapseAt = 64 << 20

// loadSpool reads the position saved in offsetFile.
func (l *sandboxLog) loadSpool() *consoleSpool {
	s := &consoleSpool{l: l}
	if b, err := os.ReadFile(filepath.Join(l.dir, offsetFile)); err == nil {
		f := strings.Fields(string(b))
		if len(f) > 0 {
			s.offset, _ = strconv.ParseInt(f[0], 10, 64)
		}
		if len(f) > 1 {
			s.dropped, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	return s
}

// save writes the position to offsetFile, in place: the record has a fixed length,
// fits in one disk sector, and is rewritten many times a second during a flood,
// where a rename each time would queue behind the filesystem's journal.
func (s *consoleSpool) save() {
	f, err := os.OpenFile(filepath.Join(s.l.dir, offsetFile), os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	_, _ = f.WriteAt(fmt.Appendf(nil, "%20d %20d\n", s.offset, s.dropped), 0)
	_ = f.Close()
}

// pump moves console output into the log every `every` until ctx ends, and trims
// the console file as it grows: woken by sub when it is written to, it polls the
// file every spoolCheckGap (with sub paused) until it stops growing. With no sub it
// polls every pollEvery. It returns after a last drain.
func (l *sandboxLog) pump(ctx context.Context, every time.Duration, sub *consoleSub) {
	s := l.loadSpool()
	var trimmer sync.WaitGroup
	trimmer.Go(func() {
		if sub == nil {
			t := time.NewTicker(pollEvery)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					s.trim()
				}
			}
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-sub.wake():
			}
			sub.pause()
			for last := int64(-1); ; {
				size := s.trim()
				if size == last {
					break
				}
				last = size
				select {
				case <-ctx.Done():
					return
				case <-time.After(spoolCheckGap):
				}
			}
			if sub.resume() != nil {
				return // the console is gone: the sandbox is being removed
			}
			s.trim() // what was written before the watch was back
		}
	})
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		s.drain()
		select {
		case <-ctx.Done():
			trimmer.Wait()
			s.drain()
			return
		case <-t.C:
		}
	}
}

// flush moves the console output the log lacks into it. Call with the pump
// stopped.
func (l *sandboxLog) flush() { l.loadSpool().drain() }

// open opens the console file for reading and reclaiming, and returns its size.
func (s *consoleSpool) open() (*os.File, int64, error) {
	f, err := os.OpenFile(filepath.Join(s.l.dir, consoleFile), os.O_RDWR, 0)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if s.offset > fi.Size() { // the file was replaced: start over
		s.offset, s.punched = 0, 0
	}
	return f, fi.Size(), nil
}

// trim drops unread output beyond caps.spoolMax and gives back the space of what
// was read or dropped, and returns the console file's size (-1 if it is gone). It
// reads nothing into the log, so it is cheap enough to run as often as the file
// grows.
func (s *consoleSpool) trim() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, size, err := s.open()
	if err != nil {
		return -1
	}
	defer f.Close()
	if s.skipTo(f, size, s.l.caps.spoolMax, s.l.caps.spoolKeep) {
		s.reclaim(f, false)
	}
	return size
}

// skipTo drops the oldest unread output when more than over is unread (beyond
// what a drain under way reads), keeping about keep bytes, from the start of a
// line where one starts close enough. It reports whether it dropped anything.
// Call with s.mu held.
func (s *consoleSpool) skipTo(f *os.File, size, over, keep int64) bool {
	from := max(s.offset, s.reading)
	if size-from <= over {
		return false
	}
	to := size - keep
	buf := make([]byte, maxLogLine)
	if n, _ := f.ReadAt(buf, to); n > 0 {
		if i := bytes.IndexByte(buf[:n], '\n'); i >= 0 {
			to += int64(i) + 1
		}
	}
	s.dropped += to - from
	s.offset = to
	return true
}
