package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// LogLine is one line of a sandbox's log: console output or a lifecycle event.
type LogLine struct {
	Time time.Time `json:"ts"`
	Line string    `json:"line"`
	// Level is an event's level when it is not LevelInfo ("" otherwise, and
	// for console lines, whose level is read from the line itself).
	Level string `json:"level,omitempty"`
	// Event is set on lines read from the events: the node wrote them, the
	// sandbox cannot.
	Event bool `json:"-"`
}

// Files in a sandbox's directory that hold its logs. Each log file is a run of JSON
// LogLines, one per line, oldest first; the ".1" file holds the lines before it.
const (
	consoleFile    = "console.log"    // raw output of the sandbox's first process, not yet in the log
	offsetFile     = "console.offset" // where in consoleFile the log has got to
	logFile        = "log.jsonl"      // console lines
	logFileOld     = "log.1.jsonl"
	eventsFile     = "events.jsonl" // lifecycle events
	eventsFileOld  = "events.1.jsonl"
	maxLogLine     = 16 << 10 // longer console lines are split
	eventPrefix    = "[lelantos] "
	drainLines     = 10000     // most console lines one drain moves into the log
	maxDrainBytes  = 1 << 20   // most console bytes one drain looks at
	maxDrainOut    = 512 << 10 // most log bytes one drain writes
	reclaimAtLeast = 64 << 10
)

// Bounds of Options.LogCap.
const (
	// DefaultLogCap is the disk space a sandbox's logs may take by default.
	DefaultLogCap = 16 << 20
	// MinLogCap is the smallest LogCap.
	MinLogCap = 1 << 20
)

// logCaps are the sizes a sandbox's log files are held to. Together they take at
// most five eighths of the cap, leaving the rest for console output written while
// the pump is busy or starved of CPU.
type logCaps struct {
	linesHalf  int64 // log.jsonl becomes log.1.jsonl when it would pass this
	eventsHalf int64 // the same for events.jsonl
	spoolMax   int64 // console output not yet in the log beyond this is dropped...
	spoolKeep  int64 // ...oldest first, down to this
	drainBytes int64 // most console bytes one drain moves into the log
	drainOut   int64 // most log bytes one drain writes
}

func capsFor(total int64) logCaps {
	return logCaps{
		linesHalf:  total / 4,
		eventsHalf: total / 32,
		spoolMax:   total / 16,
		spoolKeep:  total / 32,
		drainBytes: min(total/16, maxDrainBytes),
		drainOut:   min(total/32, maxDrainOut),
	}
}

// sandboxLog is a sandbox's log: console lines and lifecycle events, each in its own
// pair of rotating files so that a console flood never pushes events out. It is safe
// for concurrent use.
type sandboxLog struct {
	dir  string
	caps logCaps
	mu   sync.Mutex // serializes appends and rotations with each other and with read's opening
}

func newSandboxLog(dir string, capTotal int64) *sandboxLog {
	return &sandboxLog{dir: dir, caps: capsFor(capTotal)}
}

// event records a lifecycle event at LevelInfo.
func (l *sandboxLog) event(format string, args ...any) { l.eventAt(LevelInfo, format, args...) }

// eventAt records a lifecycle event at level (one of the Level constants).
func (l *sandboxLog) eventAt(level, format string, args ...any) {
	msg := eventPrefix + fmt.Sprintf(format, args...)
	if level == LevelInfo {
		level = "" // the default, not written
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	// Stamped under the lock, so that the file stays in time order.
	l.appendLocked(eventsFile, eventsFileOld, l.caps.eventsHalf, encodeLines([]LogLine{{Time: time.Now().UTC(), Line: msg, Level: level}}))
}

// appendConsole adds console lines, already encoded, to the log. Only the pump
// (or flush, with the pump stopped) calls it, so the write itself needs no lock:
// readers skip a line still being written.
func (l *sandboxLog) appendConsole(data []byte) {
	l.mu.Lock()
	f := l.openLocked(logFile, logFileOld, l.caps.linesHalf, int64(len(data)))
	l.mu.Unlock()
	if f != nil {
		_, _ = f.Write(data)
		_ = f.Close()
	}
}

// appendLocked appends data to name, first moving name to old when data would take
// it past half. Call with l.mu held.
func (l *sandboxLog) appendLocked(name, old string, half int64, data []byte) {
	if f := l.openLocked(name, old, half, int64(len(data))); f != nil {
		_, _ = f.Write(data)
		_ = f.Close()
	}
}

// openLocked opens name for appending n bytes, first moving it to old when they
// would take it past half; nil if the sandbox's directory is gone (it was killed).
// Call with l.mu held.
func (l *sandboxLog) openLocked(name, old string, half, n int64) *os.File {
	if n == 0 {
		return nil
	}
	p := filepath.Join(l.dir, name)
	if fi, err := os.Stat(p); err == nil && fi.Size() > 0 && fi.Size()+n > half {
		_ = os.Rename(p, filepath.Join(l.dir, old))
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil
	}
	return f
}
