package engine

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
	"unicode/utf8"
)

// read returns up to limit lines (all with limit <= 0) at or after start, oldest
// first: console lines and events merged by time. Each file is in time order, so
// the first line wanted is found by bisection and only the lines returned are read
// whole: a call costs the same on a full log as on an empty one.
func (l *sandboxLog) read(start time.Time, limit int) ([]LogLine, error) {
	out := []LogLine{}
	err := l.scan(LogQuery{Start: start}, func(ln LogLine) bool {
		out = append(out, ln)
		return limit <= 0 || len(out) < limit
	})
	return out, err
}

// stream is a source of log lines in one direction: peek returns the next
// line (nil at the end) without taking it, take takes it.
type stream interface {
	peek() (*LogLine, error)
	take()
	close()
}

// scan hands the lines of q's window (its Start and End, inclusive) to keep,
// events and console lines merged by time, oldest first or, with q.Backward,
// newest first, until keep returns false or the window is done. The limit and
// filters of q are keep's business.
func (l *sandboxLog) scan(q LogQuery, keep func(LogLine) bool) error {
	open := func(names ...string) (stream, error) { return openStream(l.dir, q.Start, q.End, names...) }
	if q.Backward {
		open = func(names ...string) (stream, error) { return openReverse(l.dir, q.Start, q.End, names...) }
	}
	l.mu.Lock() // no rotation between opening a file and the one after it
	events, eerr := open(eventsFileOld, eventsFile)
	console, cerr := open(logFileOld, logFile)
	l.mu.Unlock()
	defer events.close()
	defer console.close()
	if err := errors.Join(eerr, cerr); err != nil {
		return fmt.Errorf("read log: %w", err)
	}
	for {
		ev, err := events.peek()
		if err != nil {
			return fmt.Errorf("read log: %w", err)
		}
		cl, err := console.peek()
		if err != nil {
			return fmt.Errorf("read log: %w", err)
		}
		var ln LogLine
		switch {
		case ev == nil && cl == nil:
			return nil
		case cl == nil || (ev != nil && !q.Backward && !ev.Time.After(cl.Time)) || (ev != nil && q.Backward && ev.Time.After(cl.Time)):
			ln = *ev
			ln.Event = true
			events.take()
		default:
			ln = *cl
			console.take()
		}
		if !keep(ln) {
			return nil
		}
	}
}

// lineStream reads the lines between two times from a sequence of log files,
// oldest first.
type lineStream struct {
	logFiles
	cur   int
	r     *bufio.Reader
	start time.Time
	end   time.Time // zero: no end
	next  *LogLine  // read but not yet taken
}

// logFiles are the log files of a stream, oldest first.
type logFiles struct {
	files []*os.File
	sizes []int64 // as when opened: lines appended later are not read
}

// openFiles opens the files of names in dir that exist, in that order.
func openFiles(dir string, names ...string) (logFiles, error) {
	var lf logFiles
	for _, n := range names {
		f, err := os.Open(filepath.Join(dir, n))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return lf, err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return lf, err
		}
		lf.files, lf.sizes = append(lf.files, f), append(lf.sizes, fi.Size())
	}
	return lf, nil
}

func (lf logFiles) close() {
	for _, f := range lf.files {
		f.Close()
	}
}

// openStream opens the files of names in dir that exist, oldest first, and places
// the stream at the first line at or after start; it ends after the last line at
// or before end (a zero end: the last line).
func openStream(dir string, start, end time.Time, names ...string) (*lineStream, error) {
	lf, err := openFiles(dir, names...)
	s := &lineStream{logFiles: lf, start: start, end: end}
	if err != nil {
		return s, err
	}
	for s.cur < len(s.files) {
		off, err := seekTime(s.files[s.cur], s.sizes[s.cur], start)
		if err != nil {
			return s, err
		}
		if off < s.sizes[s.cur] {
			s.r = bufio.NewReader(io.NewSectionReader(s.files[s.cur], off, s.sizes[s.cur]-off))
			break
		}
		s.cur++
	}
	return s, nil
}

// take takes the line peek returned.
func (s *lineStream) take() { s.next = nil }

// peek returns the stream's next line, nil at its end.
func (s *lineStream) peek() (*LogLine, error) {
	for s.next == nil && s.cur < len(s.files) {
		if s.r == nil {
			f := s.files[s.cur]
			s.r = bufio.NewReader(io.NewSectionReader(f, 0, s.sizes[s.cur]))
		}
		raw, err := s.r.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			// A line without its end is being written: it is read next time.
			s.cur, s.r = s.cur+1, nil
			continue
		}
		if err != nil {
			return nil, err
		}
		ln, ok := decodeLine(raw)
		if !ok || ln.Time.Before(s.start) {
			continue
		}
		if !s.end.IsZero() && ln.Time.After(s.end) {
			s.cur, s.r = len(s.files), nil // the rest is later still
			break
		}
		s.next = &ln
	}
	return s.next, nil
}

// seekTime returns the offset of the first line of f (size bytes long) stamped at
// or after start, or size when there is none. Lines are in time order.
func seekTime(f *os.File, size int64, start time.Time) (int64, error) {
	if start.IsZero() || size == 0 {
		return 0, nil
	}
	// Smallest p whose next line (the first starting at or after p) is not before
	// start; lines before lo are all before start.
	lo, hi := int64(0), size
	for lo < hi {
		mid := lo + (hi-lo)/2
		at, ts, ok, err := lineAfter(f, mid, size)
		if err != nil {
			return 0, err
		}
		if ok && ts.Before(start) {
			lo = at + 1
		} else {
			hi = mid
		}
	}
	at, _, _, err := lineAfter(f, lo, size)
	return at, err
}

// lineAfter finds the first line starting at or after p and reads its time; ok is
// false when no line starts there (at is then size). A line whose time cannot be
// read counts as old.
func lineAfter(f *os.File, p, size int64) (at int64, ts time.Time, ok bool, err error) {
	at = p
	buf := make([]byte, 4096)
	if p > 0 { // a line starts at p only if the byte before it ends one
		at = size
		for q := p - 1; q < size; {
			n, rerr := f.ReadAt(buf, q)
			if i := bytes.IndexByte(buf[:n], '\n'); i >= 0 {
				at = q + int64(i) + 1
				break
			}
			if rerr != nil && !errors.Is(rerr, io.EOF) {
				return 0, ts, false, rerr
			}
			if n == 0 {
				break
			}
			q += int64(n)
		}
	}
	if at >= size {
		return size, ts, false, nil
	}
	n, rerr := f.ReadAt(buf[:128], at)
	if rerr != nil && !errors.Is(rerr, io.EOF) {
		return 0, ts, false, rerr
	}
	ts, _ = lineTime(buf[:n])
	return at, ts, true, nil
}

// lineTime reads the time of an encoded LogLine from its first bytes, as the
// encoder writes them: {"ts":"<RFC 3339>",...
func lineTime(b []byte) (time.Time, bool) {
	const prefix = `{"ts":"`
	if !bytes.HasPrefix(b, []byte(prefix)) {
		return time.Time{}, false
	}
	b = b[len(prefix):]
	end := bytes.IndexByte(b, '"')
	if end < 0 {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(b[:end]))
	return t, err == nil
}

// decodeLine decodes one log file line. Lines as the engine writes them whose text
// has no escapes are taken apart directly, which is most console output; anything
// else goes through encoding/json.
func decodeLine(raw []byte) (LogLine, bool) {
	const head, mid, tail = `{"ts":"`, `","line":"`, `"}`
	if bytes.HasPrefix(raw, []byte(head)) {
		if q := bytes.IndexByte(raw[len(head):], '"'); q >= 0 {
			ts, err := time.Parse(time.RFC3339Nano, string(raw[len(head):len(head)+q]))
			body, ok := bytes.CutPrefix(raw[len(head)+q:], []byte(mid))
			body = bytes.TrimSuffix(body, []byte("\n"))
			text, closed := bytes.CutSuffix(body, []byte(tail))
			if err == nil && ok && closed && bytes.IndexByte(text, '\\') < 0 && bytes.IndexByte(text, '"') < 0 && utf8.Valid(text) {
				return LogLine{Time: ts, Line: string(text)}, true
			}
		}
	}
	var ln LogLine
	if json.Unmarshal(raw, &ln) != nil {
		return LogLine{}, false
	}
	return ln, true
}
