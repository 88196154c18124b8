package api

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	agentv1 "lelantos.dev/lelantos/internal/gen/agent/v1"
)

// exerciseObserve calls the v2 logs and batch metrics routes with success,
// for the spec's coverage; TestLogRoutes and TestBatchMetrics test them.
func exerciseObserve(t *testing.T, e *env, want func(*response, int) *response, id string) {
	t.Helper()
	want(e.do("GET", "/v2/sandboxes/"+id+"/logs", ""), 200)
	want(e.do("GET", "/v2/sandboxes/"+id+"/logs?direction=forward&limit=5&level=info&search=sandbox&cursor=1", ""), 200)
	want(e.do("GET", "/sandboxes/metrics?sandbox_ids="+id, ""), 200)
}

// v1Line is a line of the v1 logs route decoded as E2B's CLI decodes it.
type v1Line map[string]string

// TestLogRoutes: the v1 route's lines are JSON objects with the entry's
// level, message and fields (E2B's CLI parses them), its logEntries and the v2
// route give the same entries, and the v2 query works as E2B's.
func TestLogRoutes(t *testing.T) {
	e := newEnv(t)
	var sb sandboxJSON
	if r := e.do("POST", "/sandboxes", `{"templateID":"base","timeout":600}`); r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	} else {
		r.decode(t, &sb)
	}
	// The create's events are at about now; console lines around them.
	now := time.Now()
	e.node.AddLog(sb.SandboxID, now.Add(-time.Minute), "booting, plain text")
	e.node.AddLogLine(sb.SandboxID, &agentv1.LogLine{Timestamp: timestamppb.New(now.Add(time.Minute)), Source: agentv1.LogSource_LOG_SOURCE_CONSOLE,
		Level: "error", Message: "disk full", Fields: map[string]string{"path": "/data"}})
	e.node.AddLogLine(sb.SandboxID, &agentv1.LogLine{Timestamp: timestamppb.New(now.Add(2 * time.Minute)), Source: agentv1.LogSource_LOG_SOURCE_EVENT,
		Level: "warn", Message: "out of memory: 1 process(es) killed"})

	var v1 logsJSON
	if r := e.do("GET", "/sandboxes/"+sb.SandboxID+"/logs", ""); r.Status != 200 {
		t.Fatalf("v1 logs: %d %s", r.Status, r.Body)
	} else {
		r.decode(t, &v1)
	}
	if len(v1.Logs) < 4 || len(v1.LogEntries) != len(v1.Logs) {
		t.Fatalf("v1 logs: %d lines, %d entries", len(v1.Logs), len(v1.LogEntries))
	}
	for i, l := range v1.Logs {
		var obj v1Line
		if err := json.Unmarshal([]byte(l.Line), &obj); err != nil {
			t.Fatalf("line %d is not a JSON object of strings: %q (%v)", i, l.Line, err)
		}
		le := v1.LogEntries[i]
		if obj["level"] != le.Level || obj["message"] != le.Message || !l.Timestamp.Equal(le.Timestamp) {
			t.Errorf("line %d %v does not match its entry %+v", i, obj, le)
		}
		for k, v := range le.Fields {
			if obj[k] != v {
				t.Errorf("line %d: field %s = %q, entry has %q", i, k, obj[k], v)
			}
		}
		if obj["sandboxID"] != sb.SandboxID || obj["envID"] != "base" || obj["teamID"] == "" || (obj["logger"] != "console" && obj["logger"] != "lifecycle") {
			t.Errorf("line %d lacks the sandbox's fields: %v", i, obj)
		}
	}
	first, last := v1.LogEntries[0], v1.LogEntries[len(v1.LogEntries)-1]
	if first.Message != "booting, plain text" || first.Level != "info" || first.Fields["logger"] != "console" {
		t.Errorf("the plain console line: %+v", first)
	}
	if last.Level != "warn" || last.Fields["logger"] != "lifecycle" || !strings.HasPrefix(last.Message, "out of memory") {
		t.Errorf("the node's warning event: %+v", last)
	}

	// v2, default: newest first; the same entries as v1.
	var v2 logsV2JSON
	e.do("GET", "/v2/sandboxes/"+sb.SandboxID+"/logs", "").decode(t, &v2)
	if len(v2.Logs) != len(v1.LogEntries) {
		t.Fatalf("v2: %d entries, v1 %d", len(v2.Logs), len(v1.LogEntries))
	}
	for i := range v2.Logs {
		a, b := v2.Logs[i], v1.LogEntries[len(v1.LogEntries)-1-i]
		if a.Message != b.Message || a.Level != b.Level || !a.Timestamp.Equal(b.Timestamp) || fmt.Sprint(a.Fields) != fmt.Sprint(b.Fields) {
			t.Errorf("v2 entry %d %+v, v1 has %+v", i, a, b)
		}
	}
	ms := func(t time.Time) string { return fmt.Sprint(t.UnixMilli()) }
	tests := []struct {
		name  string
		query string
		want  []string // message prefixes
	}{
		{"forward, 2", "direction=forward&limit=2", []string{"booting", "sandbox created"}},
		{"backward, 1", "limit=1", []string{"out of memory"}},
		{"errors and worse", "level=error", []string{"disk full"}},
		{"warnings and worse, forward", "level=warn&direction=forward", []string{"disk full", "out of memory"}},
		{"search", "search=disk+full", []string{"disk full"}},
		{"search is case sensitive", "search=DISK+FULL", nil},
		{"backward from a cursor", "cursor=" + ms(now.Add(-time.Second)), []string{"booting"}},
		{"forward from a cursor", "direction=forward&cursor=" + ms(now.Add(90*time.Second)), []string{"out of memory"}},
		{"a window", "start=" + ms(now.Add(30*time.Second)) + "&end=" + ms(now.Add(90*time.Second)), []string{"disk full"}},
		{"an empty window", "start=" + ms(now.Add(time.Hour)) + "&end=" + ms(now), nil},
		{"limit 0", "limit=0", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do("GET", "/v2/sandboxes/"+sb.SandboxID+"/logs?"+tt.query, "")
			if r.Status != 200 {
				t.Fatalf("%d %s", r.Status, r.Body)
			}
			var got logsV2JSON
			r.decode(t, &got)
			if len(got.Logs) != len(tt.want) {
				t.Fatalf("%d entries %+v, want %v", len(got.Logs), got.Logs, tt.want)
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(got.Logs[i].Message, w) {
					t.Errorf("entry %d %q, want prefix %q", i, got.Logs[i].Message, w)
				}
			}
		})
	}
	for _, bad := range []string{"limit=1001", "limit=-1", "direction=sideways", "level=verbose", "cursor=-5", "start=x",
		"search=" + url.QueryEscape(strings.Repeat("x", 257))} {
		r := e.do("GET", "/v2/sandboxes/"+sb.SandboxID+"/logs?"+bad, "")
		field := bad[:strings.IndexByte(bad, '=')]
		if r.Status != 400 || !strings.HasPrefix(r.errorMessage(t), field+":") {
			t.Errorf("%s: %d %s, want a 400 naming %s", bad, r.Status, r.Body, field)
		}
	}
	for _, path := range []string{"/v2/sandboxes/doesnotexist/logs", "/v2/sandboxes/doesnotexist/logs?start=9&end=1"} {
		if r := e.do("GET", path, ""); r.Status != 404 {
			t.Errorf("%s: %d, want 404", path, r.Status)
		}
	}
	// Another team's sandbox is as unknown as an unknown one.
	for _, path := range []string{"/sandboxes/" + sb.SandboxID + "/logs", "/v2/sandboxes/" + sb.SandboxID + "/logs"} {
		if r := e.doAs(e.keyB, "GET", path, ""); r.Status != 404 {
			t.Errorf("%s as another team: %d, want 404", path, r.Status)
		}
	}
}

// TestBatchMetrics: the newest sample of each of the caller's sandboxes, by
// ID, CPU rounded to 2 decimals; others' and unknown IDs are left out; bad
// queries are 400s naming sandbox_ids.
func TestBatchMetrics(t *testing.T) {
	e := newEnv(t)
	e.node.SetCPU(0.11203099006278684)
	var ids []string
	for range 2 {
		var sb sandboxJSON
		e.do("POST", "/sandboxes", `{"templateID":"base"}`).decode(t, &sb)
		ids = append(ids, sb.SandboxID)
	}
	var theirs sandboxJSON
	e.doAs(e.keyB, "POST", "/sandboxes", `{"templateID":"base"}`).decode(t, &theirs)
	r := e.do("GET", "/sandboxes/metrics?sandbox_ids="+strings.Join(append(ids, theirs.SandboxID, "unknown"), ","), "")
	if r.Status != 200 {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	var got sandboxesMetricsJSON
	r.decode(t, &got)
	if len(got.Sandboxes) != 2 {
		t.Fatalf("metrics of %d sandboxes, want the caller's 2: %s", len(got.Sandboxes), r.Body)
	}
	for _, id := range ids {
		m, ok := got.Sandboxes[id]
		if !ok || m.CPUUsedPct != 0.11 || m.MemTotal != 512<<20 || m.TimestampUnix != m.Timestamp.Unix() || m.CPUCount == 0 {
			t.Errorf("%s: %+v (%v), want cpu 0.11 and memTotal in bytes", id, m, ok)
		}
	}
	// The per-sandbox route has the same rounding.
	var per []metricJSON
	e.do("GET", "/sandboxes/"+ids[0]+"/metrics", "").decode(t, &per)
	if len(per) == 0 || per[len(per)-1].CPUUsedPct != 0.11 {
		t.Errorf("per-sandbox metrics %+v", per)
	}
	many := make([]string, 101)
	for i := range many {
		many[i] = fmt.Sprintf("id%d", i)
	}
	for _, q := range []string{"", "sandbox_ids=", "sandbox_ids=a,,b", "sandbox_ids=a,a", "sandbox_ids=" + strings.Join(many, ",")} {
		r := e.do("GET", "/sandboxes/metrics?"+q, "")
		if r.Status != 400 || !strings.HasPrefix(r.errorMessage(t), "sandbox_ids:") {
			t.Errorf("%q: %d %s, want a 400 naming sandbox_ids", q, r.Status, r.Body)
		}
	}
}
