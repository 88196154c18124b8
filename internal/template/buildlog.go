package template

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// buildLog writes a build's log: to the caller's writer as text, as produced, and to
// the build's log file as timestamped lines. Write takes raw command output.
type buildLog struct {
	mu      sync.Mutex
	w       io.Writer
	f       *os.File
	partial []byte
	step    string // the step lines belong to
}

// setStep names the step the next lines belong to.
func (l *buildLog) setStep(step string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushPartial()
	l.step = step
}

func (r *buildRecord) logger(w io.Writer) *buildLog {
	if w == nil {
		w = io.Discard
	}
	f, _ := os.OpenFile(filepath.Join(r.dir, buildLogs), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	return &buildLog{w: w, f: f}
}

// Write takes command output: it goes on as it comes, and into the file line by line.
func (l *buildLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = l.w.Write(p) // a gone client does not fail the build
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.entry("info", string(bytes.TrimRight(l.partial[:i], "\r")))
		l.partial = l.partial[i+1:]
	}
	for len(l.partial) > maxLogEntry {
		l.entry("info", string(l.partial[:maxLogEntry]))
		l.partial = l.partial[maxLogEntry:]
	}
	return len(p), nil
}

func (l *buildLog) infof(format string, args ...any) { l.line("info", fmt.Sprintf(format, args...)) }

func (l *buildLog) errorf(format string, args ...any) { l.line("error", fmt.Sprintf(format, args...)) }

// line writes one line of the builder's own.
func (l *buildLog) line(level, msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushPartial()
	_, _ = io.WriteString(l.w, msg+"\n")
	l.entry(level, msg)
}

func (l *buildLog) flushPartial() {
	if len(l.partial) > 0 {
		_, _ = l.w.Write([]byte("\n"))
		l.entry("info", string(l.partial))
		l.partial = nil
	}
}

func (l *buildLog) entry(level, msg string) {
	if l.f == nil {
		return
	}
	data, _ := json.Marshal(LogEntry{Time: time.Now().UTC(), Level: level, Message: msg, Step: l.step})
	_, _ = l.f.Write(append(data, '\n'))
}

// close flushes the last partial line; later lines are dropped from the file.
func (l *buildLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushPartial()
	if l.f != nil {
		_ = l.f.Close()
		l.f = nil
	}
}
