package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestLogQuery: windows, both directions, limits after filters, across the
// rotated file, with events merged by time; a line still being written is not
// read.
func TestLogQuery(t *testing.T) {
	dir := t.TempDir()
	l := newSandboxLog(dir, MinLogCap)
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var all []LogEntry
	for i := range 9000 {
		ts := base.Add(time.Duration(i) * time.Millisecond)
		text := fmt.Sprintf("plain line %05d %s", i, strings.Repeat("x", 60))
		level := LevelInfo
		if i%1000 == 0 {
			text = fmt.Sprintf(`{"level":"WARN","msg":"structured %05d","pid":%d}`, i, i)
			level = LevelWarn
		}
		l.appendConsole(encodeLines([]LogLine{{Time: ts, Line: text + "\n"}}))
		msg := text
		if level == LevelWarn {
			msg = fmt.Sprintf("structured %05d", i)
		}
		all = append(all, LogEntry{Time: ts, Level: level, Message: msg})
	}
	if _, err := os.Stat(filepath.Join(dir, logFileOld)); err != nil {
		t.Fatalf("the test wants the log rotated: %v", err)
	}
	// Events, written with times among the console lines'.
	for _, i := range []int{0, 4500, 8999} {
		ln := LogLine{Time: base.Add(time.Duration(i) * time.Millisecond), Line: eventPrefix + fmt.Sprintf("event %d", i), Level: LevelError}
		if i == 4500 {
			ln.Level = ""
		}
		l.mu.Lock()
		l.appendLocked(eventsFile, eventsFileOld, l.caps.eventsHalf, encodeLines([]LogLine{ln}))
		l.mu.Unlock()
	}
	// A line being written: no newline yet.
	f, err := os.OpenFile(filepath.Join(dir, logFile), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, `{"ts":"%s","line":"half`, base.Add(time.Hour).Format(time.RFC3339Nano))
	f.Close()

	kept, err := l.query(LogQuery{})
	if err != nil {
		t.Fatal(err)
	}
	var console []LogEntry
	for _, e := range kept {
		if !e.Event {
			console = append(console, e)
		}
	}
	if len(console) == 0 || len(console) == len(all) {
		t.Fatalf("rotation kept %d of %d console lines", len(console), len(all))
	}
	all = all[len(all)-len(console):]
	for i := range all {
		if console[i].Message != all[i].Message || console[i].Level != all[i].Level || !console[i].Time.Equal(all[i].Time) {
			t.Fatalf("console entry %d: %+v, want %+v", i, console[i], all[i])
		}
	}
	at := func(i int) time.Time { return all[i].Time }
	n := len(all)
	tests := []struct {
		name string
		q    LogQuery
	}{
		{"everything", LogQuery{}},
		{"everything backward", LogQuery{Backward: true}},
		{"newest 10", LogQuery{Backward: true, Limit: 10}},
		{"oldest 10", LogQuery{Limit: 10}},
		{"a window", LogQuery{Start: at(n / 4), End: at(n / 2)}},
		{"a window backward, limited", LogQuery{Start: at(n / 4), End: at(n / 2), Backward: true, Limit: 25}},
		{"backward from within the old file", LogQuery{End: at(10), Backward: true}},
		{"warnings and worse", LogQuery{Level: LevelWarn}},
		{"errors only, backward", LogQuery{Level: LevelError, Backward: true}},
		{"search, limited", LogQuery{Search: "structured", Limit: 2}},
		{"search backward", LogQuery{Search: "plain line 0", Backward: true, Limit: 3}},
		{"nothing matches", LogQuery{Search: "no such text"}},
		{"after all", LogQuery{Start: base.Add(2 * time.Hour)}},
		{"before all, backward", LogQuery{End: base.Add(-time.Hour), Backward: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want []LogEntry
			src := slices.Clone(kept)
			if tt.q.Backward {
				slices.Reverse(src)
			}
			for _, e := range src {
				in := (tt.q.Start.IsZero() || !e.Time.Before(tt.q.Start)) && (tt.q.End.IsZero() || !e.Time.After(tt.q.End))
				if in && tt.q.matches(e) && (tt.q.Limit == 0 || len(want) < tt.q.Limit) {
					want = append(want, e)
				}
			}
			got, err := l.query(tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("%d entries, want %d (first %v, want %v)", len(got), len(want), first(got), first(want))
			}
			for i := range got {
				if got[i].Message != want[i].Message || got[i].Event != want[i].Event || !got[i].Time.Equal(want[i].Time) {
					t.Fatalf("entry %d: %+v, want %+v", i, got[i], want[i])
				}
			}
		})
	}
	// The reversed merge puts, at equal times, the console line first (the
	// forward merge puts the event first).
	fw, _ := l.query(LogQuery{Start: at(n - 1), End: at(n - 1)})
	bw, _ := l.query(LogQuery{Start: at(n - 1), End: at(n - 1), Backward: true})
	if len(fw) != 2 || !fw[0].Event || len(bw) != 2 || bw[0].Event || !bw[1].Event {
		t.Errorf("equal times: forward %+v, backward %+v", fw, bw)
	}
	if ev := first(mustQuery(t, l, LogQuery{Search: "event 8999"})); len(ev) != 1 || !ev[0].Event || ev[0].Level != LevelError || ev[0].Message != "event 8999" {
		t.Errorf("an error event: %+v", ev)
	}
}

func first(l []LogEntry) []LogEntry { return l[:min(2, len(l))] }

func mustQuery(t *testing.T, l *sandboxLog, q LogQuery) []LogEntry {
	t.Helper()
	got, err := l.query(q)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestLogQueryLongLines: reading backward joins lines longer than a read
// chunk, whatever their place.
func TestLogQueryLongLines(t *testing.T) {
	dir := t.TempDir()
	l := newSandboxLog(dir, 64<<20)
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var want []string
	for i, size := range []int{10, reverseChunk - 40, 5, 3 * reverseChunk, reverseChunk + 1, 1, 2 * reverseChunk} {
		text := fmt.Sprintf("%d:%s", i, strings.Repeat(string(rune('a'+i)), size))
		l.appendConsole(encodeLines([]LogLine{{Time: base.Add(time.Duration(i) * time.Second), Line: text}}))
		want = append(want, text)
	}
	got := mustQuery(t, l, LogQuery{Backward: true})
	slices.Reverse(want)
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].Message != want[i] {
			t.Errorf("entry %d: %d bytes %.20q, want %d %.20q", i, len(got[i].Message), got[i].Message, len(want[i]), want[i])
		}
	}
}

// TestEntryOf: how console lines and events are shaped.
func TestEntryOf(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name string
		ln   LogLine
		want string
	}{
		{"plain text", LogLine{Line: "hello world\n"}, `info "hello world" map[]`},
		{"plain text with CRLF", LogLine{Line: "dos\r\n"}, `info "dos" map[]`},
		{"empty line", LogLine{Line: "\n"}, `info "" map[]`},
		{"slog JSON", LogLine{Line: `{"time":"2026-01-02T03:04:05Z","level":"WARN","msg":"disk low","free":12,"path":"/"}` + "\n"},
			`warn "disk low" map[free:12 path:/ time:2026-01-02T03:04:05Z]`},
		{"zerolog", LogLine{Line: `{"level":"error","message":"boom","err":{"code":3},"nothing":null}`}, `error "boom" map[err:{"code":3}]`},
		{"slog level offset", LogLine{Line: `{"level":"INFO+2","msg":"a bit more"}`}, `info "a bit more" map[]`},
		{"pino number", LogLine{Line: `{"level":50,"msg":"failed","hostname":"h"}`}, `error "failed" map[hostname:h]`},
		{"debug", LogLine{Line: `{"level":"trace","msg":"detail"}`}, `debug "detail" map[]`},
		{"no level", LogLine{Line: `{"msg":"just a message"}`}, `info "just a message" map[]`},
		{"both message keys", LogLine{Line: `{"message":"main","msg":"other"}`}, `info "main" map[msg:other]`},
		{"JSON without a message is text", LogLine{Line: `{"level":"error","data":1}`}, `info "{\"level\":\"error\",\"data\":1}" map[]`},
		{"broken JSON is text", LogLine{Line: `{"level":"error","msg":"x"`}, `info "{\"level\":\"error\",\"msg\":\"x\"" map[]`},
		{"a JSON array is text", LogLine{Line: `[1,2]`}, `info "[1,2]" map[]`},
		{"event", LogLine{Line: eventPrefix + "sandbox paused", Event: true}, `info "sandbox paused" map[]`},
		{"warning event", LogLine{Line: eventPrefix + "out of memory", Level: LevelWarn, Event: true}, `warn "out of memory" map[]`},
		{"a console line cannot be an event", LogLine{Line: eventPrefix + "sandbox killed", Level: LevelError}, `info "[lelantos] sandbox killed" map[]`},
	}
	for _, tt := range tests {
		tt.ln.Time = ts
		e := entryOf(tt.ln)
		if got := fmt.Sprintf("%s %q %v", e.Level, e.Message, e.Fields); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
		if !e.Time.Equal(ts) || e.Event != tt.ln.Event {
			t.Errorf("%s: time %v event %v", tt.name, e.Time, e.Event)
		}
	}
}

// TestEventLevelsRoundTrip: an event's level survives its file; an info
// event is written as before, without one.
func TestEventLevelsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	l := newSandboxLog(dir, MinLogCap)
	l.event("created")
	l.eventAt(LevelWarn, "out of memory: %d", 2)
	raw, err := os.ReadFile(filepath.Join(dir, eventsFile))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(lines) != 2 || strings.Contains(lines[0], "level") || !strings.HasSuffix(lines[1], `,"level":"warn"}`) {
		t.Fatalf("events file:\n%s", raw)
	}
	got := mustQuery(t, l, LogQuery{})
	if len(got) != 2 || got[0].Level != LevelInfo || got[1].Level != LevelWarn || got[1].Message != "out of memory: 2" || !got[1].Event {
		t.Fatalf("entries %+v", got)
	}
	if old, err := l.read(time.Time{}, 0); err != nil || len(old) != 2 || old[1].Level != LevelWarn || old[1].Line != eventPrefix+"out of memory: 2" {
		t.Fatalf("read: %+v, %v", old, err)
	}
}
