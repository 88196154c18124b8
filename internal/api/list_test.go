package api

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"sync"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/controlplane"
	agentv1 "lelantos.dev/lelantos/internal/gen/agent/v1"
	"lelantos.dev/lelantos/internal/store"
)

func TestParseMetadataFilter(t *testing.T) {
	tests := []struct {
		name, raw string // raw is the query value after the normal decoding
		want      map[string]string
	}{
		{"empty", "", nil},
		{"simple", "user=abc&app=prod", map[string]string{"user": "abc", "app": "prod"}},
		{"compat doc example", "a%20b=c%26d", map[string]string{"a b": "c&d"}},
		{"JS client layer", "a%2520b=c%2526d", map[string]string{"a b": "c&d"}},
		{"percent in value, JS", "x=100%2525", map[string]string{"x": "100%"}},
		{"percent in value, doc", "x=100%25", map[string]string{"x": "100%"}},
		{"apostrophe, JS", "it%27s=ok", map[string]string{"it's": "ok"}},
		{"empty value", "k=", map[string]string{"k": ""}},
		{"trailing &", "k=v&", map[string]string{"k": "v"}},
	}
	for _, tt := range tests {
		got, err := parseMetadataFilter(tt.raw)
		if err != nil || fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("%s: parse(%q) = %v, %v; want %v", tt.name, tt.raw, got, err, tt.want)
		}
	}
	for _, bad := range []string{"novalue", "=v", "k=%zz", "%zz=v"} {
		if _, err := parseMetadataFilter(bad); err == nil {
			t.Errorf("parse(%q) succeeded", bad)
		}
	}
}

// TestMetadataFilterOnTheWire sends the filter as the clients do.
func TestMetadataFilterOnTheWire(t *testing.T) {
	e := newEnv(t)
	ids := map[string]string{}
	for name, md := range map[string]string{
		"amp":     `{"a b":"c&d"}`,
		"plain":   `{"a b":"c"}`,
		"percent": `{"x":"100%"}`,
	} {
		var sb sandboxJSON
		e.do("POST", "/v2/sandboxes", `{"metadata":`+md+`}`).decode(t, &sb)
		ids[name] = sb.SandboxID
	}
	tests := []struct {
		name, query, want string
	}{
		{"compat doc example", "metadata=a%2520b%3Dc%2526d", "amp"},
		{"JS client 2.50/2.51", "metadata=a%252520b%3Dc%252526d", "amp"},
		{"single layer", "metadata=" + url.QueryEscape("a%20b=c"), "plain"},
		{"percent, JS", "metadata=x%3D100%252525", "percent"},
		{"percent, doc", "metadata=x%3D100%2525", "percent"},
	}
	for _, tt := range tests {
		for _, path := range []string{"/sandboxes?", "/v2/sandboxes?"} {
			var got []listedJSON
			r := e.do("GET", path+tt.query, "")
			if r.Status != 200 {
				t.Fatalf("%s %s: %d %s", tt.name, path, r.Status, r.Body)
			}
			r.decode(t, &got)
			if len(got) != 1 || got[0].SandboxID != ids[tt.want] {
				t.Errorf("%s via %s: got %v, want only %s", tt.name, path, got, tt.want)
			}
		}
	}
}

func TestPaginationWithFilters(t *testing.T) {
	e := newEnv(t)
	want := map[string]bool{}
	for i := range 23 {
		team := "red"
		if i%3 == 0 {
			team = "blue"
		}
		var sb sandboxJSON
		e.do("POST", "/v2/sandboxes", fmt.Sprintf(`{"metadata":{"team":%q,"n":"%d"}}`, team, i)).decode(t, &sb)
		paused := i%4 == 0
		if paused {
			if r := e.do("POST", "/sandboxes/"+sb.SandboxID+"/pause", ""); r.Status != 204 {
				t.Fatal(r.Status)
			}
		}
		if team == "red" && !paused {
			want[sb.SandboxID] = true
		}
	}
	for _, order := range []string{"asc", "desc"} {
		got := map[string]bool{}
		var starts []time.Time
		token, pages := "", 0
		for {
			q := "/v2/sandboxes?metadata=team%3Dred&state=running&limit=4&order=" + order
			if token != "" {
				q += "&nextToken=" + url.QueryEscape(token)
			}
			r := e.do("GET", q, "")
			var items []listedJSON
			r.decode(t, &items)
			if len(items) > 4 {
				t.Fatalf("page of %d", len(items))
			}
			for _, it := range items {
				if got[it.SandboxID] || it.State != "running" || it.Metadata["team"] != "red" {
					t.Errorf("%s: unexpected or repeated %+v", order, it)
				}
				got[it.SandboxID] = true
				starts = append(starts, it.StartedAt)
			}
			pages++
			token = r.Header.Get("X-Next-Token")
			if token == "" || pages > 20 {
				break
			}
		}
		if fmt.Sprint(sortedKeys(got)) != fmt.Sprint(sortedKeys(want)) {
			t.Errorf("%s: listed %d sandboxes, want %d", order, len(got), len(want))
		}
		if pages != (len(want)+3)/4 {
			t.Errorf("%s: %d pages for %d items of 4", order, pages, len(want))
		}
		sorted := sort.SliceIsSorted(starts, func(i, j int) bool { return starts[i].Before(starts[j]) })
		if order == "desc" {
			sorted = sort.SliceIsSorted(starts, func(i, j int) bool { return starts[i].After(starts[j]) })
		}
		if !sorted {
			t.Errorf("%s: not in %s order of start", order, order)
		}
	}
	// The v1 list has every running red one in a single answer.
	var all []listedJSON
	e.do("GET", "/sandboxes?metadata=team%3Dred", "").decode(t, &all)
	if len(all) != len(want) {
		t.Errorf("v1 list: %d, want %d", len(all), len(want))
	}
	// Paused ones only.
	var paused []listedJSON
	e.do("GET", "/v2/sandboxes?state=paused", "").decode(t, &paused)
	if len(paused) != 6 {
		t.Errorf("paused: %d, want 6", len(paused))
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestConcurrentCallsOverHTTP sends 50 mixed lifecycle calls on one sandbox
// at once through the API against a slow node: no 5xx, and store and node
// agree at the end.
func TestConcurrentCallsOverHTTP(t *testing.T) {
	e := newEnv(t)
	var sb sandboxJSON
	e.do("POST", "/v2/sandboxes", `{}`).decode(t, &sb)
	e.node.SetDelay(3 * time.Millisecond)
	calls := []struct{ method, path, body string }{
		{"POST", "/sandboxes/" + sb.SandboxID + "/pause", ""},
		{"POST", "/sandboxes/" + sb.SandboxID + "/resume", "{}"},
		{"POST", "/v2/sandboxes/" + sb.SandboxID + "/connect", `{"timeout":120}`},
		{"POST", "/sandboxes/" + sb.SandboxID + "/timeout", `{"timeout":600}`},
		{"POST", "/sandboxes/" + sb.SandboxID + "/refreshes", `{"duration":60}`},
		{"GET", "/sandboxes/" + sb.SandboxID, ""},
		{"GET", "/sandboxes/" + sb.SandboxID + "/metrics", ""},
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for i := range 50 {
		c := calls[(i*7+i/7)%len(calls)]
		wg.Go(func() {
			r := e.do(c.method, c.path, c.body)
			mu.Lock()
			statuses[r.Status]++
			mu.Unlock()
		})
	}
	wg.Wait()
	for status, n := range statuses {
		if status >= 500 {
			t.Errorf("%d answers with %d", n, status)
		}
	}
	var d detailJSON
	e.do("GET", "/sandboxes/"+sb.SandboxID, "").decode(t, &d)
	nodeState, _ := e.node.State(sb.SandboxID)
	if (d.State == "running") != (nodeState == agentv1.SandboxState_SANDBOX_STATE_RUNNING) {
		t.Errorf("API says %s, node says %v", d.State, nodeState)
	}
	if n := e.node.Overlaps(); n != 0 {
		t.Errorf("%d overlapping node calls", n)
	}
	t.Logf("statuses: %v", statuses)
}

// BenchmarkCreateOverhead measures POST /v2/sandboxes with a node that does
// nothing: decoding, validation, template lookup, the store writes (SQLite,
// synchronous) and encoding: the API's own cost per create.
func BenchmarkCreateOverhead(b *testing.B) {
	e := newEnv(b)
	b.ResetTimer()
	for b.Loop() {
		if r := e.raw("POST", "/v2/sandboxes", `{"templateID":"base","metadata":{"k":"v"}}`); r.Code != 201 {
			b.Fatalf("create: %d %s", r.Code, r.Body)
		}
	}
}

// BenchmarkList10k measures GET /v2/sandboxes (one page of 100) with 10,000
// sandboxes in a real SQLite store.
func BenchmarkList10k(b *testing.B) {
	e := newEnv(b)
	seed10k(b, e)
	b.ResetTimer()
	for b.Loop() {
		r := e.raw("GET", "/v2/sandboxes?state=running", "")
		if r.Code != 200 || r.Header().Get("X-Next-Token") == "" {
			b.Fatalf("list: %d", r.Code)
		}
	}
}

// BenchmarkList10kMetadata is BenchmarkList10k with a metadata filter that
// matches a tenth of the sandboxes.
func BenchmarkList10kMetadata(b *testing.B) {
	e := newEnv(b)
	seed10k(b, e)
	b.ResetTimer()
	for b.Loop() {
		r := e.raw("GET", "/v2/sandboxes?metadata=shard%3D3", "")
		if r.Code != 200 || r.Header().Get("X-Next-Token") == "" {
			b.Fatalf("list: %d", r.Code)
		}
	}
}

// seed10k stores 10,000 running sandboxes through the store directly.
func seed10k(b *testing.B, e *env) {
	b.Helper()
	ctx := context.Background()
	start := time.Now().Add(-time.Hour)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < 10000; i += 4 {
				sb := newStoredSandbox(i, start.Add(time.Duration(i)*time.Millisecond))
				if err := e.db.InsertSandbox(ctx, sb); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// newStoredSandbox is a running sandbox record numbered i.
func newStoredSandbox(i int, started time.Time) *store.Sandbox {
	return &store.Sandbox{
		ID: fmt.Sprintf("bench%015d", i), TeamID: store.DefaultTeamID, TemplateID: "base", ClientID: controlplane.ClientID,
		RuntimeClass: controlplane.RuntimeGVisor, WorkloadType: controlplane.WorkloadType,
		State: controlplane.StateRunning, CPUCount: 2, MemoryMB: 512, DiskSizeMB: 2048,
		Metadata:    map[string]string{"shard": fmt.Sprint(i % 10), "owner": "bench"},
		EnvdVersion: controlplane.DefaultEnvdVersion, EnvdAccessToken: "t", StartedAt: started,
		EndAt: started.Add(24 * time.Hour), NodeID: controlplane.LocalNodeID, Address: "10.0.0.1",
	}
}
