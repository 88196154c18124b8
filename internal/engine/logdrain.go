package engine

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// drain moves the newest whole console lines into the log, as many as one drain's
// budget takes, and gives back the space of what it read. Older unread output is
// dropped, and the log says so: a log that keeps only its newest lines gains nothing
// from lines older than those about to be written.
func (s *consoleSpool) drain() {
	s.mu.Lock()
	f, size, err := s.open()
	if err != nil {
		s.mu.Unlock()
		return
	}
	defer f.Close()
	caps := s.l.caps
	s.skipTo(f, size, caps.drainBytes, caps.drainBytes)
	start := s.offset
	window := make([]byte, size-start)
	got, _ := f.ReadAt(window, start)
	window = window[:got]
	// Whole lines only; a partial last line waits for its end, unless it is
	// longer than a line may be.
	whole := bytes.LastIndexByte(window, '\n') + 1
	if rest := len(window) - whole; rest >= maxLogLine {
		whole += rest / maxLogLine * maxLogLine
	}
	// The newest lines the budget takes, counting what encoding adds to each,
	// found from the end so that what is dropped is never looked at line by line.
	first, cost, n := whole, int64(0), 0
	for first > 0 && n < drainLines {
		lineStart := bytes.LastIndexByte(window[:first-1], '\n') + 1
		chunk := lineStart + (first-lineStart-1)/maxLogLine*maxLogLine // long lines are split
		c := int64(first-chunk) + lineOverhead
		if cost+c > caps.drainOut {
			break
		}
		cost, n, first = cost+c, n+1, chunk
	}
	dropped := s.dropped + int64(first)
	if whole == 0 && dropped == 0 {
		s.mu.Unlock()
		return
	}
	end := start + int64(whole)
	s.reading, s.dropped = end, 0
	s.mu.Unlock()

	now := time.Now().UTC()
	out := make([]byte, 0, cost+lineOverhead)
	if dropped > 0 {
		out = appendLogLine(out, now, []byte(fmt.Sprintf("%s%d bytes of console output dropped: the sandbox wrote faster than its log keeps",
			eventPrefix, dropped)))
	}
	for _, ln := range splitLines(window[first:whole]) {
		out = appendLogLine(out, now, bytes.TrimRight(ln, "\r\n"))
	}
	s.l.appendConsole(out)

	s.mu.Lock()
	defer s.mu.Unlock()
	s.offset, s.reading = max(s.offset, end), 0
	s.reclaim(f, true)
}

// reclaim saves the position and gives back the disk space of the console file
// before it. Punching out blocks is cheap and leaves offsets as they are. With cut
// set (no drain is under way), the punched front of the file is cut off once the
// file is collapseAt long: cutting waits for the file's unwritten tail to reach the
// disk, so it is not done often. Call with s.mu held.
func (s *consoleSpool) reclaim(f *os.File, cut bool) {
	s.save()
	st, ok := fileStat(f)
	if !ok {
		return
	}
	blk := int64(4096)
	if st.Blksize > 0 {
		blk = int64(st.Blksize)
	}
	done := s.offset / blk * blk // what a drain under way reads is in its memory already
	if !s.noPunch && done-s.punched >= reclaimAtLeast {
		err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, s.punched, done-s.punched)
		if err == nil {
			s.punched = done
		} else if errors.Is(err, unix.EOPNOTSUPP) {
			s.noPunch = true
		}
	}
	length := min(done, (st.Size-1)/blk*blk) // collapsing must leave the file's last byte
	if !cut || s.noCut || length < reclaimAtLeast || (st.Size < collapseAt && !s.noPunch) {
		return
	}
	// Saved first: a crash before the cut repeats lines instead of skipping some.
	s.offset -= length
	s.save()
	if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_COLLAPSE_RANGE, 0, length); err == nil {
		s.punched = max(0, s.punched-length)
		return
	} else if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) {
		s.noCut = true
	}
	s.offset += length
	s.save()
}

func fileStat(f *os.File) (*syscall.Stat_t, bool) {
	fi, err := f.Stat()
	if err != nil {
		return nil, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return st, ok
}
