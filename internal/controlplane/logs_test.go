package controlplane

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	agentv1 "lelantos.dev/lelantos/internal/gen/agent/v1"
)

// TestLogs: the control plane's events and the node's lines merged by time in
// either direction, windows, level and search filters before the limit, and
// every entry with the sandbox's fields and its logger.
func TestLogs(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	sb := h.create(t, CreateRequest{TemplateID: "large"}) // two events at clock time T
	t0 := h.clock.Now()
	h.node.AddLog(sb.ID, t0.Add(-time.Second), "console: booting")
	h.node.AddLogLine(sb.ID, &agentv1.LogLine{Timestamp: timestamppb.New(t0.Add(time.Second)), Source: agentv1.LogSource_LOG_SOURCE_CONSOLE,
		Level: "warn", Message: "console: disk low", Fields: map[string]string{"free": "12", "logger": "forged", "sandboxID": "forged"}})
	h.node.AddLogLine(sb.ID, &agentv1.LogLine{Timestamp: timestamppb.New(t0.Add(1500 * time.Millisecond)), Source: agentv1.LogSource_LOG_SOURCE_EVENT,
		Level: "error", Message: "out of memory"})
	h.clock.Advance(2 * time.Second)
	if err := h.svc.Pause(ctx, defTeam, sb.ID); err != nil { // event at T+2s
		t.Fatal(err)
	}
	all := []string{"console: booting", "sandbox created", "sandbox running", "console: disk low", "out of memory", "sandbox paused"}
	rev := []string{"sandbox paused", "out of memory", "console: disk low", "sandbox running", "sandbox created", "console: booting"}
	tests := []struct {
		name string
		q    LogQuery
		want []string
	}{
		{"all", LogQuery{Limit: 100}, all},
		{"limit", LogQuery{Limit: 2}, all[:2]},
		{"start", LogQuery{Start: t0.Add(time.Second), Limit: 100}, all[3:]},
		{"window", LogQuery{Start: t0, End: t0.Add(time.Second), Limit: 100}, all[1:4]},
		{"backward", LogQuery{Limit: 100, Backward: true}, rev},
		{"backward, newest 2", LogQuery{Limit: 2, Backward: true}, rev[:2]},
		{"backward from an end", LogQuery{End: t0, Limit: 100, Backward: true}, rev[3:]},
		{"warnings and worse", LogQuery{Level: LevelWarn, Limit: 100}, []string{"console: disk low", "out of memory"}},
		{"errors, backward", LogQuery{Level: LevelError, Limit: 100, Backward: true}, []string{"out of memory"}},
		{"debug is everything", LogQuery{Level: LevelDebug, Limit: 100}, all},
		{"search both sources", LogQuery{Search: "memory", Limit: 100}, []string{"sandbox created", "out of memory"}},
		{"search the console", LogQuery{Search: "console:", Limit: 100}, []string{"console: booting", "console: disk low"}},
		{"search is case sensitive", LogQuery{Search: "Sandbox", Limit: 100}, nil},
		{"search then limit", LogQuery{Search: "sandbox", Limit: 2, Backward: true}, []string{"sandbox paused", "sandbox running"}},
		{"zero limit", LogQuery{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := h.svc.Logs(ctx, defTeam, sb.ID, tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d entries %v, want %v", len(got), messages(got), tt.want)
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(got[i].Message, w) {
					t.Errorf("entry %d = %q, want prefix %q", i, got[i].Message, w)
				}
			}
		})
	}
	entries, err := h.svc.Logs(ctx, defTeam, sb.ID, LogQuery{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	wantFields := []string{
		"map[envID:big logger:console sandboxID:%s teamID:%s]",
		"map[envID:big logger:lifecycle sandboxID:%s teamID:%s]",
		"map[envID:big logger:lifecycle sandboxID:%s teamID:%s]",
		"map[envID:big free:12 logger:console sandboxID:%s teamID:%s]",
		"map[envID:big logger:lifecycle sandboxID:%s teamID:%s]",
		"map[envID:big logger:lifecycle sandboxID:%s teamID:%s]",
	}
	wantLevels := []string{"info", "info", "info", "warn", "error", "info"}
	for i, e := range entries {
		if got, want := fmt.Sprint(e.Fields), fmt.Sprintf(wantFields[i], sb.ID, defTeam); got != want {
			t.Errorf("entry %d (%s) fields %s, want %s", i, e.Message, got, want)
		}
		if e.Level != wantLevels[i] {
			t.Errorf("entry %d (%s) level %s, want %s", i, e.Message, e.Level, wantLevels[i])
		}
	}
	for _, q := range []LogQuery{
		{Limit: MaxLogLimit + 1}, {Limit: -1}, {Limit: 1, Level: "verbose"},
		{Limit: 1, Search: strings.Repeat("x", MaxLogSearch+1)}, {Limit: 1, Start: t0, End: t0.Add(-time.Second)},
	} {
		if _, err := h.svc.Logs(ctx, defTeam, sb.ID, q); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("query %+v: %v, want invalid argument", q, err)
		}
	}
	if _, err := h.svc.Logs(ctx, defTeam, "unknown", LogQuery{Limit: 10}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown sandbox: %v", err)
	}
}

func messages(es []LogEntry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Message
	}
	return out
}
