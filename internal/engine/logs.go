package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// LogLine is one line of a sandbox's log: console output or a lifecycle event.
type LogLine struct {
	Time time.Time `json:"ts"`
	Line string    `json:"line"`
}

// Files in a sandbox's directory that hold its logs.
const (
	consoleFile = "console.log" // raw output of the sandbox's first process
	logFile     = "log.jsonl"   // timestamped lines: console output and events
	offsetFile  = "console.offset"
	maxLogLine  = 16 << 10 // longer console lines are split
)

// sandboxLog appends timestamped lines to a sandbox's log file. It is safe for
// concurrent use.
type sandboxLog struct {
	dir string
	mu  sync.Mutex
}

// event records a lifecycle event.
func (l *sandboxLog) event(format string, args ...any) {
	l.append([]LogLine{{Time: time.Now().UTC(), Line: "[lelantos] " + fmt.Sprintf(format, args...)}})
}

func (l *sandboxLog) append(lines []LogLine) {
	if len(lines) == 0 {
		return
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, ln := range lines {
		_ = enc.Encode(ln)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	f, err := os.OpenFile(filepath.Join(l.dir, logFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return // the sandbox's directory is gone: it was killed
	}
	_, _ = f.Write(buf.Bytes())
	_ = f.Close()
}

// pump copies new console output into the log until ctx ends, resuming from the
// offset it saved last, so a restarted node neither loses nor repeats lines.
func (l *sandboxLog) pump(ctx context.Context, every time.Duration) {
	offset := int64(0)
	if b, err := os.ReadFile(filepath.Join(l.dir, offsetFile)); err == nil {
		offset, _ = strconv.ParseInt(string(b), 10, 64)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		offset = l.drain(offset)
		select {
		case <-ctx.Done():
			l.drain(offset)
			return
		case <-t.C:
		}
	}
}

// drain moves whole console lines after offset into the log and returns the new offset.
func (l *sandboxLog) drain(offset int64) int64 {
	f, err := os.Open(filepath.Join(l.dir, consoleFile))
	if err != nil {
		return offset
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return offset
	}
	r := bufio.NewReaderSize(f, maxLogLine)
	now := time.Now().UTC()
	var lines []LogLine
	start := offset
	for {
		chunk, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull || (err == nil && len(chunk) > 0) {
			offset += int64(len(chunk))
			lines = append(lines, LogLine{Time: now, Line: string(bytes.TrimRight(chunk, "\r\n"))})
			continue
		}
		break // a partial last line waits for its end
	}
	if offset != start {
		l.append(lines)
		_ = os.WriteFile(filepath.Join(l.dir, offsetFile), []byte(strconv.FormatInt(offset, 10)), 0o600)
	}
	return offset
}

// read returns up to limit lines at or after start, oldest first.
func (l *sandboxLog) read(start time.Time, limit int) ([]LogLine, error) {
	f, err := os.Open(filepath.Join(l.dir, logFile))
	if os.IsNotExist(err) {
		return []LogLine{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read log: %w", err)
	}
	defer f.Close()
	out := []LogLine{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() && (limit <= 0 || len(out) < limit) {
		var ln LogLine
		if json.Unmarshal(sc.Bytes(), &ln) != nil || ln.Time.Before(start) {
			continue
		}
		out = append(out, ln)
	}
	return out, sc.Err()
}
