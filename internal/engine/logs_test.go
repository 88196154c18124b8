package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/engine"
	"lelantos.dev/lelantos/internal/engine/enginetest"
)

// countLines counts the log lines containing s.
func countLines(lines []engine.LogLine, s string) int {
	n := 0
	for _, l := range lines {
		if strings.Contains(l.Line, s) {
			n++
		}
	}
	return n
}

// TestLogs: console output and lifecycle events reach the log once each, across
// pauses, and the log can be read from a time on and in pages.
func TestLogs(t *testing.T) {
	node := enginetest.NewNode(t, "10.232.3.0/24")
	e := node.Engine(t)
	ctx := context.Background()
	spec := newSpec(t, "logs")
	spec.DefaultUser = ""
	st := create(t, e, spec)
	if got := must(t, st, "whoami"); got != "user" {
		t.Errorf("commands run as %q, want the template's default user", got)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		lines, err := e.Logs(st.Spec.ID, time.Time{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if countLines(lines, "envd listening") > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon's start line never reached the log: %+v", lines)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i := 0; i < 2; i++ {
		if _, err := e.Pause(ctx, st.Spec.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Resume(ctx, st.Spec.ID); err != nil {
			t.Fatal(err)
		}
	}
	lines, err := e.Logs(st.Spec.ID, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		line string
		want int
	}{
		{"envd listening", 1},
		{"[lelantos] sandbox created", 1},
		{"[lelantos] sandbox paused", 2},
		{"[lelantos] sandbox resumed", 2},
	} {
		if got := countLines(lines, c.line); got != c.want {
			t.Errorf("%q is in the log %d times, want %d", c.line, got, c.want)
		}
	}
	for i := 1; i < len(lines); i++ {
		if lines[i].Time.Before(lines[i-1].Time) {
			t.Errorf("log line %d (%v) is older than the one before (%v)", i, lines[i].Time, lines[i-1].Time)
		}
	}
	if page, err := e.Logs(st.Spec.ID, time.Time{}, 2); err != nil || len(page) != 2 || page[0] != lines[0] {
		t.Errorf("first page of 2: %+v, %v", page, err)
	}
	last := lines[len(lines)-1]
	if tail, err := e.Logs(st.Spec.ID, last.Time, 0); err != nil || len(tail) == 0 || tail[len(tail)-1] != last || tail[0].Time.Before(last.Time) {
		t.Errorf("log from %v: %+v, %v", last.Time, tail, err)
	}
	if err := e.Kill(ctx, st.Spec.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Logs(st.Spec.ID, time.Time{}, 0); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("logs of a killed sandbox: %v, want ErrNotFound", err)
	}
}
