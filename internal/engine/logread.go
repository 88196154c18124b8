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
	l.mu.Lock() // no rotation between opening a file and the one after it
	events, eerr := openStream(l.dir, start, eventsFileOld, eventsFile)
	console, cerr := openStream(l.dir, start, logFileOld, logFile)
	l.mu.Unlock()
	defer events.close()
	defer console.close()
	if err := errors.Join(eerr, cerr); err != nil {
		return nil, fmt.Errorf("read log: %w", err)
	}
	out := []LogLine{}
	for limit <= 0 || len(out) < limit {
		ev, err := events.peek()
		if err != nil {
			return nil, fmt.Errorf("read log: %w", err)
		}
		cl, err := console.peek()
		if err != nil {
			return nil, fmt.Errorf("read log: %w", err)
		}
		switch {
		case ev == nil && cl == nil:
			return out, nil
		case cl == nil || (ev != nil && !ev.Time.After(cl.Time)):
			out = append(out, *ev)
			events.next = nil
		default:
			out = append(out, *cl)
			console.next = nil
		}
	}
	return out, nil
}

// lineStream reads the lines at or after a time from a sequence of log files.
type lineStream struct {
	files []*os.File
	sizes []int64 // as when opened: lines appended later are not read
	cur   int
	r     *bufio.Reader
	start time.Time
	next  *LogLine // read but not yet taken
}

// openStream opens the files of names in dir that exist, oldest first, and places
// the stream at the first line at or after start.
func openStream(dir string, start time.Time, names ...string) (*lineStream, error) {
	s := &lineStream{start: start}
	for _, n := range names {
		f, err := os.Open(filepath.Join(dir, n))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return s, err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return s, err
		}
		s.files, s.sizes = append(s.files, f), append(s.sizes, fi.Size())
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

func (s *lineStream) close() {
	for _, f := range s.files {
		f.Close()
	}
}

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
