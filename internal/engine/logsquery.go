package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Log levels, as E2B names them, least severe first.
const (
	LevelDebug = "debug"
	LevelInfo  = "info"
	LevelWarn  = "warn"
	LevelError = "error"
)

// levelRank orders the levels; unknown levels rank as LevelInfo.
func levelRank(level string) int {
	switch level {
	case LevelDebug:
		return 0
	case LevelWarn:
		return 2
	case LevelError:
		return 3
	}
	return 1
}

// ValidLevel reports whether level is one of the Level constants.
func ValidLevel(level string) bool {
	switch level {
	case LevelDebug, LevelInfo, LevelWarn, LevelError:
		return true
	}
	return false
}

// LogQuery selects lines of a sandbox's log.
type LogQuery struct {
	// Start and End bound the lines' times, both inclusive; zero leaves that
	// side open.
	Start, End time.Time
	// Limit is the most entries returned; <= 0 means all.
	Limit int
	// Backward returns the newest first (from End); the default is oldest
	// first (from Start).
	Backward bool
	// Level, when set, keeps the entries at or above it (an unknown level
	// counts as LevelInfo).
	Level string
	// Search, when set, keeps the entries whose message contains it (case
	// sensitive).
	Search string
}

// LogEntry is a line of a sandbox's log in E2B's structured form.
type LogEntry struct {
	Time time.Time
	// Event is set for the node's lifecycle events; the others are the
	// sandbox's console output.
	Event bool
	// Level is one of the Level constants.
	Level string
	// Message is the event's text, or the console line: without its newline,
	// or the message of a structured line.
	Message string
	// Fields are the other values of a structured console line (a JSON
	// object with a message), as strings; nil for anything else.
	Fields map[string]string
	// Raw is the line as captured, without its newline (an event with its
	// "[lelantos] " prefix).
	Raw string
}

// matches reports whether e passes q's level and search filters.
func (q LogQuery) matches(e LogEntry) bool {
	return (q.Level == "" || levelRank(e.Level) >= levelRank(q.Level)) &&
		(q.Search == "" || strings.Contains(e.Message, q.Search))
}

// QueryLogs returns the entries of sandbox id's log that q selects.
func (e *Engine) QueryLogs(id string, q LogQuery) ([]LogEntry, error) {
	e.mu.Lock()
	b := e.boxes[id]
	e.mu.Unlock()
	if b == nil {
		return nil, fmt.Errorf("logs of sandbox %s: %w", id, ErrNotFound)
	}
	return b.log.query(q)
}

// query implements QueryLogs: the filters apply before the limit, so a page
// holds Limit matching entries whenever the window has them.
func (l *sandboxLog) query(q LogQuery) ([]LogEntry, error) {
	out := []LogEntry{}
	err := l.scan(q, func(ln LogLine) bool {
		if e := entryOf(ln); q.matches(e) {
			out = append(out, e)
		}
		return q.Limit <= 0 || len(out) < q.Limit
	})
	return out, err
}

// entryOf shapes a log line. A console line that is a JSON object with a
// "msg" or "message" (what structured loggers write) gives its level, message
// and other values; any other console line is the message itself, at
// LevelInfo. Nothing a sandbox prints makes an event: those come from the
// node's own file.
func entryOf(ln LogLine) LogEntry {
	e := LogEntry{Time: ln.Time, Event: ln.Event, Level: LevelInfo, Raw: strings.TrimRight(ln.Line, "\r\n")}
	if ln.Event {
		e.Message = strings.TrimPrefix(e.Raw, eventPrefix)
		if ValidLevel(ln.Level) {
			e.Level = ln.Level
		}
		return e
	}
	e.Message = e.Raw
	if level, msg, fields, ok := structured(e.Message); ok {
		e.Level, e.Message, e.Fields = level, msg, fields
	}
	return e
}

// structured reads a console line written by a structured logger: a JSON
// object with a "message" or "msg". Its "level" (or "lvl", "severity") becomes
// the entry's level, and its other values, its own time included (the entry's
// is when the line was captured), become fields: strings as they are, numbers
// as written, anything else as its JSON.
func structured(text string) (level, msg string, fields map[string]string, ok bool) {
	t := strings.TrimSpace(text)
	if len(t) < 2 || t[0] != '{' || t[len(t)-1] != '}' {
		return "", "", nil, false
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal([]byte(t), &obj) != nil {
		return "", "", nil, false
	}
	key := "message"
	if _, has := obj[key]; !has {
		key = "msg"
	}
	raw, has := obj[key]
	if !has {
		return "", "", nil, false
	}
	msg = scalar(raw)
	delete(obj, key)
	level = LevelInfo
	for _, k := range []string{"level", "lvl", "severity"} {
		if v, has := obj[k]; has {
			level = parseLevel(v)
			delete(obj, k)
			break
		}
	}
	for k, v := range obj {
		if bytes.Equal(v, []byte("null")) {
			continue
		}
		if fields == nil {
			fields = map[string]string{}
		}
		fields[k] = scalar(v)
	}
	return level, msg, fields, true
}

// scalar is a JSON value as a field's string: a string's text, any other
// value's JSON.
func scalar(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var buf bytes.Buffer
	if json.Compact(&buf, raw) == nil {
		return buf.String()
	}
	return string(raw)
}

// parseLevel maps a logger's level to E2B's: names as common loggers write
// them in any case ("WARNING", "INFO+2", "fatal"), or numbers as pino and
// bunyan write them (30 info, 40 warn...). Anything else is LevelInfo.
func parseLevel(raw json.RawMessage) string {
	var n float64
	if json.Unmarshal(raw, &n) == nil {
		switch {
		case n <= 20:
			return LevelDebug
		case n <= 30:
			return LevelInfo
		case n <= 40:
			return LevelWarn
		}
		return LevelError
	}
	name := strings.ToLower(scalar(raw))
	if i := strings.IndexAny(name, "+-"); i > 0 {
		name = name[:i] // slog's "INFO+2"
	}
	switch name {
	case "trace", "debug", "dbg":
		return LevelDebug
	case "warn", "warning":
		return LevelWarn
	case "error", "err", "fatal", "panic", "critical", "crit", "alert", "emerg", "emergency":
		return LevelError
	}
	return LevelInfo
}
