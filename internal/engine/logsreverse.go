package engine

import (
	"bytes"
	"time"
)

// reverseChunk is how much of a log file one read takes when reading it from
// its end.
const reverseChunk = 64 << 10

// revStream reads the lines between two times from a sequence of log files,
// newest first: the files from the last, each from the end of the window
// (found by bisection, like lineStream's start) towards its beginning, a chunk
// at a time. So the newest lines of a full log cost what the oldest do.
type revStream struct {
	logFiles
	cur     int    // the file being read, from the last down
	pos     int64  // the bytes of files[cur] before pos are not read yet
	carry   []byte // the start of the chunk read last: part of a line that began before it
	pending [][]byte
	start   time.Time // zero: no start
	end     time.Time // zero: no end
	next    *LogLine
	done    bool
}

// openReverse opens the files of names in dir that exist (oldest first, as
// openStream takes them) for reading newest first, from the last line at or
// before end (a zero end: the last line) down to the first at or after start.
func openReverse(dir string, start, end time.Time, names ...string) (*revStream, error) {
	lf, err := openFiles(dir, names...)
	s := &revStream{logFiles: lf, start: start, end: end, cur: len(lf.files)}
	if err != nil {
		return s, err
	}
	return s, s.nextFile()
}

// nextFile moves to the file before the current one and places pos at the end
// of its part of the window: the start of the first line after end, or the end
// of the file's last complete line (a last line without its newline is being
// written).
func (s *revStream) nextFile() error {
	s.cur--
	s.carry, s.pending = nil, nil
	if s.cur < 0 {
		s.done = true
		return nil
	}
	f, size := s.files[s.cur], s.sizes[s.cur]
	if !s.end.IsZero() {
		off, err := seekTime(f, size, s.end.Add(time.Nanosecond))
		s.pos = off
		return err
	}
	s.pos = size
	for s.pos > 0 { // back to the end of the last complete line
		n := min(int64(reverseChunk), s.pos)
		buf := make([]byte, n)
		if _, err := f.ReadAt(buf, s.pos-n); err != nil {
			return err
		}
		if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
			s.pos = s.pos - n + int64(i) + 1
			return nil
		}
		s.pos -= n
	}
	return nil
}

// take takes the line peek returned.
func (s *revStream) take() { s.next = nil }

// peek returns the stream's next (older) line, nil at its end.
func (s *revStream) peek() (*LogLine, error) {
	for s.next == nil && !s.done {
		raw, err := s.prevLine()
		if err != nil {
			return nil, err
		}
		if raw == nil {
			if err := s.nextFile(); err != nil {
				return nil, err
			}
			continue
		}
		ln, ok := decodeLine(raw)
		switch {
		case !ok:
			continue
		case !s.start.IsZero() && ln.Time.Before(s.start):
			s.done = true // older files hold older lines still
		case !s.end.IsZero() && ln.Time.After(s.end):
			continue
		default:
			s.next = &ln
		}
	}
	return s.next, nil
}

// prevLine returns the line of the current file before those returned so
// far, with its newline, or nil when the file has no more. Everything from pos
// on is either in pending or carry, the end of a line that begins at or before
// pos; so the data of a read (the chunk before pos, then carry) always ends
// with a newline, and all of it after its first newline is whole lines.
func (s *revStream) prevLine() ([]byte, error) {
	for len(s.pending) == 0 {
		if s.pos == 0 {
			line := s.carry
			s.carry = nil
			if len(line) == 0 {
				return nil, nil
			}
			return line, nil
		}
		n := min(int64(reverseChunk), s.pos)
		data := make([]byte, n, n+int64(len(s.carry)))
		if _, err := s.files[s.cur].ReadAt(data, s.pos-n); err != nil {
			return nil, err
		}
		s.pos -= n
		data = append(data, s.carry...)
		s.carry = nil
		if s.pos > 0 { // the first line may begin before the chunk
			i := bytes.IndexByte(data, '\n')
			s.carry, data = data[:i+1], data[i+1:] // i >= 0: data ends with a newline
		}
		for len(data) > 0 {
			i := bytes.IndexByte(data, '\n') + 1
			if i == 0 {
				i = len(data)
			}
			s.pending = append(s.pending, data[:i])
			data = data[i:]
		}
	}
	line := s.pending[len(s.pending)-1]
	s.pending = s.pending[:len(s.pending)-1]
	return line, nil
}
