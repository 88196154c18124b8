package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// logDiskUse is the disk space the log files of the sandbox directory dir take.
func logDiskUse(t testing.TB, dir string) int64 {
	t.Helper()
	var n int64
	for _, f := range []string{consoleFile, offsetFile, logFile, logFileOld, eventsFile, eventsFileOld} {
		if st, ok := statOf(filepath.Join(dir, f)); ok {
			n += st
		}
	}
	return n
}

func statOf(p string) (int64, bool) {
	f, err := os.Open(p)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	st, ok := fileStat(f)
	if !ok {
		return 0, false
	}
	return st.Blocks * 512, true
}

// appendConsoleFile appends to the console file as the runtime does.
func appendConsoleFile(t testing.TB, dir string, data []byte) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, consoleFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// TestLogRotationKeepsNewestAndEvents: console lines far beyond the cap leave the
// newest lines and every event, within the cap.
func TestLogRotationKeepsNewestAndEvents(t *testing.T) {
	dir := t.TempDir()
	const capTotal = MinLogCap
	l := newSandboxLog(dir, capTotal)
	l.event("sandbox created")
	for i := range 20000 {
		l.appendConsole(encodeLines([]LogLine{{Time: time.Now().UTC(), Line: fmt.Sprintf("line %06d %s", i, strings.Repeat("x", 100))}}))
		if i%5000 == 0 {
			l.event("mark %d", i)
		}
	}
	l.event("sandbox ended")
	if use := logDiskUse(t, dir); use > capTotal {
		t.Errorf("logs take %d bytes, cap %d", use, capTotal)
	}
	lines, err := l.read(time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var events []string
	for _, ln := range lines {
		if strings.HasPrefix(ln.Line, eventPrefix) {
			events = append(events, strings.TrimPrefix(ln.Line, eventPrefix))
		}
	}
	want := []string{"sandbox created", "mark 0", "mark 5000", "mark 10000", "mark 15000", "sandbox ended"}
	if fmt.Sprint(events) != fmt.Sprint(want) {
		t.Errorf("events %q, want %q", events, want)
	}
	if last := lines[len(lines)-2].Line; !strings.HasPrefix(last, "line 019999") {
		t.Errorf("the newest console line is %q, want line 019999", last)
	}
	if first := lines[0].Line; strings.HasPrefix(first, "line 000000") {
		t.Errorf("the oldest console line %q is still there past the cap", first)
	}
}

// TestLogReadFromTime: reading from a time finds the same lines as a full scan,
// for times before, between, on and after the lines, with and without a limit.
func TestLogReadFromTime(t *testing.T) {
	dir := t.TempDir()
	l := newSandboxLog(dir, MinLogCap)
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var all []LogLine
	for i := range 15000 {
		ln := LogLine{Time: base.Add(time.Duration(i/3) * time.Millisecond), Line: fmt.Sprintf("c%d", i)}
		all = append(all, ln)
		l.appendConsole(encodeLines([]LogLine{ln}))
	}
	if _, err := os.Stat(filepath.Join(dir, logFileOld)); err != nil {
		t.Fatalf("the test wants the log rotated once: %v", err)
	}
	// What rotation kept.
	kept, err := l.read(time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	all = all[len(all)-len(kept):]
	tests := []struct {
		name  string
		start time.Time
		limit int
	}{
		{"everything", time.Time{}, 0},
		{"before all", base.Add(-time.Hour), 0},
		{"first kept", kept[0].Time, 10},
		{"on a line", all[len(all)/2].Time, 7},
		{"between lines", all[len(all)/3].Time.Add(time.Microsecond), 0},
		{"last", all[len(all)-1].Time, 0},
		{"after all", base.Add(time.Hour), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want []LogLine
			for _, ln := range all {
				if !ln.Time.Before(tt.start) && (tt.limit == 0 || len(want) < tt.limit) {
					want = append(want, ln)
				}
			}
			got, err := l.read(tt.start, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("got %d lines %v..., want %d %v...", len(got), head(got), len(want), head(want))
			}
		})
	}
}

func head(l []LogLine) []LogLine { return l[:min(3, len(l))] }

// TestConsoleSpool: output written faster than the log takes it is dropped oldest
// first, with a note, the console file gives its space back, and the saved offset
// lets a new pump go on where the old one stopped.
func TestConsoleSpool(t *testing.T) {
	dir := t.TempDir()
	const capTotal = 4 * MinLogCap
	l := newSandboxLog(dir, capTotal)
	var flood bytes.Buffer
	for i := 0; flood.Len() < 20<<20; i++ {
		fmt.Fprintf(&flood, "flood %08d\n", i)
	}
	appendConsoleFile(t, dir, flood.Bytes())
	s := l.loadSpool()
	s.trim()
	if size, _ := statOf(filepath.Join(dir, consoleFile)); size > l.caps.spoolMax {
		t.Errorf("console file takes %d bytes after trim, want at most %d", size, l.caps.spoolMax)
	}
	appendConsoleFile(t, dir, []byte("after the flood\n"))
	for range 10 {
		l.loadSpool().drain()
	}
	lines, err := l.read(time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) < 2 || !strings.Contains(lines[0].Line, "bytes of console output dropped") {
		t.Fatalf("first line %v, want a note of what was dropped", head(lines))
	}
	if got := lines[len(lines)-1].Line; got != "after the flood" {
		t.Errorf("last line %q, want the line written after the flood", got)
	}
	if got, want := lines[len(lines)-2].Line, strings.TrimSpace(string(flood.Bytes()[flood.Len()-15:])); got != want {
		t.Errorf("last flood line %q, want the newest %q", got, want)
	}
	for i := 2; i < len(lines)-1; i++ {
		var a, b int
		fmt.Sscanf(lines[i-1].Line, "flood %d", &a)
		fmt.Sscanf(lines[i].Line, "flood %d", &b)
		if b != a+1 {
			t.Fatalf("lines %d and %d are %q and %q: kept output must be whole and in order", i-1, i, lines[i-1].Line, lines[i].Line)
		}
	}
	if use := logDiskUse(t, dir); use > capTotal {
		t.Errorf("logs take %d bytes, cap %d", use, capTotal)
	}
	// A new pump (a restarted node) neither repeats nor loses lines.
	appendConsoleFile(t, dir, []byte("after a restart\n"))
	l2 := newSandboxLog(dir, capTotal)
	l2.flush()
	again, err := l2.read(time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != len(lines)+1 || again[len(again)-1].Line != "after a restart" {
		t.Errorf("after a restart: %d lines ending %q, want %d ending \"after a restart\"", len(again), again[len(again)-1].Line, len(lines)+1)
	}
}

// TestLogReadIsFastOnAFullLog: reading a page of a log at its cap takes well under
// the time a whole-file read would.
func TestLogReadIsFastOnAFullLog(t *testing.T) {
	dir := t.TempDir()
	l := newSandboxLog(dir, DefaultLogCap)
	base := time.Now().UTC()
	var batch []LogLine
	i := 0
	for logDiskUse(t, dir) < DefaultLogCap/2-(1<<20) {
		batch = batch[:0]
		for range 1000 {
			batch = append(batch, LogLine{Time: base.Add(time.Duration(i) * time.Microsecond), Line: "y"})
			i++
		}
		l.appendConsole(encodeLines(batch))
	}
	last := base.Add(time.Duration(i-1) * time.Microsecond)
	for _, start := range []time.Time{{}, base.Add(time.Duration(i/2) * time.Microsecond), last} {
		t0 := time.Now()
		lines, err := l.read(start, 10000)
		took := time.Since(t0)
		if err != nil || len(lines) == 0 {
			t.Fatalf("read from %v: %d lines, %v", start, len(lines), err)
		}
		t.Logf("read of %d lines from %v of a %d-line log: %v", len(lines), start.Format(time.StampMicro), i, took)
		if took > 200*time.Millisecond {
			t.Errorf("read of %d lines from %v of a %d-line log took %v, want under 200ms", len(lines), start, i, took)
		}
	}
}

// TestLogLineEncoding: the bulk encoder writes exactly what encoding/json writes,
// and the fast decoder reads what encoding/json reads.
func TestLogLineEncoding(t *testing.T) {
	ts := time.Date(2026, 5, 6, 7, 8, 9, 123456789, time.UTC)
	for _, line := range []string{
		"", "plain", `quote " and \ backslash`, "tab\tcr\rbell\x07nul\x00",
		"\b\f\x1f\x7f", "<html> & </html>", "héllo, 世界, 🚀", "bad \xff\xfe utf-8 \xe2\x82",
		"line\u2028sep\u2029para",
	} {
		want, err := json.Marshal(LogLine{Time: ts, Line: line})
		if err != nil {
			t.Fatal(err)
		}
		got := appendLogLine(nil, ts, []byte(line))
		if string(got) != string(want)+"\n" {
			t.Errorf("%q: encoded %s, encoding/json %s", line, got, want)
		}
		var back LogLine
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatal(err)
		}
		if dec, ok := decodeLine(got); !ok || dec != back {
			t.Errorf("%q: decoded %+v, %v; encoding/json decodes %+v", line, dec, ok, back)
		}
	}
}
