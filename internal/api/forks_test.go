package api

import (
	"strings"
	"testing"
)

// escapeSegment encodes an ID as the clients put it in a path segment
// (encodeURIComponent): "/" and ":" escaped.
func escapeSegment(id string) string {
	return strings.NewReplacer("/", "%2F", ":", "%3A").Replace(id)
}

// exerciseForks calls the fork and snapshot routes and the pause variants with
// their main outcomes, for TestSpecConformance.
func exerciseForks(t *testing.T, e *env, want func(r *response, status int) *response) {
	t.Helper()
	var src sandboxJSON
	want(e.do("POST", "/v2/sandboxes", `{"templateID":"base","metadata":{"of":"forks"}}`), 201).decode(t, &src)
	fork := "/sandboxes/" + src.SandboxID + "/fork"

	var forks []forkResultJSON
	want(e.do("POST", fork, `{}`), 201).decode(t, &forks)
	if len(forks) != 1 || forks[0].Sandbox == nil || forks[0].Error != nil || forks[0].Sandbox.SandboxID == src.SandboxID ||
		forks[0].Sandbox.EnvdAccessToken == src.EnvdAccessToken {
		t.Errorf("a plain fork answered %+v", forks)
	}
	want(e.do("POST", fork, `{"count":2,"timeout":60}`), 201).decode(t, &forks)
	if len(forks) != 2 || forks[0].Sandbox == nil || forks[1].Sandbox == nil {
		t.Errorf("two forks answered %+v", forks)
	}
	e.node.LimitForks(1)
	want(e.do("POST", fork, `{"count":2}`), 201).decode(t, &forks)
	if len(forks) != 2 || forks[0].Sandbox == nil || forks[1].Error == nil || forks[1].Error.Code != 503 ||
		!strings.Contains(forks[1].Error.Message, "node full") {
		t.Errorf("a fork past the node's room answered %+v", forks)
	}
	e.node.LimitForks(-1)
	for _, body := range []string{`{"count":0}`, `{"count":101}`, `{"timeout":0}`, `{"timeout":-5}`, `{"count":"x"}`} {
		want(e.do("POST", fork, body), 400)
	}
	want(e.do("POST", "/sandboxes/doesnotexist/fork", `{}`), 404)
	want(e.doAs(e.keyB, "POST", fork, `{}`), 404)

	// Snapshots: take, list, use, delete.
	snaps := "/sandboxes/" + src.SandboxID + "/snapshots"
	var unnamed, named snapshotJSON
	want(e.do("POST", snaps, `{}`), 201).decode(t, &unnamed)
	if !strings.HasSuffix(unnamed.SnapshotID, ":default") || unnamed.Names == nil || len(unnamed.Names) != 0 {
		t.Errorf("unnamed snapshot %+v", unnamed)
	}
	want(e.do("POST", snaps, `{"name":"snap-a"}`), 201).decode(t, &named)
	if named.SnapshotID != "default/snap-a:default" || len(named.Names) != 1 || named.Names[0] != "default/snap-a" {
		t.Errorf("named snapshot %+v", named)
	}
	for _, body := range []string{`{"name":"bad name"}`, `{"name":"beta/snap"}`, `{"name":""}`, `{"name":"base"}`} {
		want(e.do("POST", snaps, body), 400)
	}
	want(e.do("POST", "/sandboxes/doesnotexist/snapshots", `{}`), 404)
	want(e.doAs(e.keyB, "POST", snaps, `{}`), 404)

	var list []snapshotJSON
	want(e.do("GET", "/snapshots", ""), 200).decode(t, &list)
	if len(list) != 2 || list[0].SnapshotID != named.SnapshotID || list[1].SnapshotID != unnamed.SnapshotID {
		t.Errorf("snapshots listed %+v", list)
	}
	page := want(e.do("GET", "/snapshots?limit=1&sandboxID="+src.SandboxID, ""), 200)
	if next := page.Header.Get("X-Next-Token"); next == "" {
		t.Errorf("a first page of one of two has no X-Next-Token")
	} else {
		last := want(e.do("GET", "/snapshots?limit=1&nextToken="+next, ""), 200)
		last.decode(t, &list)
		if len(list) != 1 || list[0].SnapshotID != unnamed.SnapshotID || last.Header.Get("X-Next-Token") != "" {
			t.Errorf("second page %+v, next %q", list, last.Header.Get("X-Next-Token"))
		}
	}
	want(e.do("GET", "/snapshots?name=snap-a", ""), 200).decode(t, &list)
	if len(list) != 1 || list[0].SnapshotID != named.SnapshotID {
		t.Errorf("snapshots named snap-a: %+v", list)
	}
	want(e.do("GET", "/snapshots?name=nosuch", ""), 200).decode(t, &list)
	if len(list) != 0 {
		t.Errorf("an unknown name lists %+v", list)
	}
	for _, q := range []string{"limit=0", "limit=101", "nextToken=garbage", "sandboxID=Not%20An%20ID"} {
		want(e.do("GET", "/snapshots?"+q, ""), 400)
	}
	want(e.doAs(e.keyB, "GET", "/snapshots", ""), 200).decode(t, &list)
	if len(list) != 0 {
		t.Errorf("another team lists %+v", list)
	}

	var child sandboxJSON
	want(e.do("POST", "/v2/sandboxes", `{"templateID":"`+named.SnapshotID+`"}`), 201).decode(t, &child)
	if child.Alias != "snap-a" || child.TemplateID == "base" {
		t.Errorf("a sandbox from the snapshot: %+v", child)
	}
	if sp := e.node.SpecOf(child.SandboxID); sp.GetSnapshotId() == "" {
		t.Errorf("the node was not asked to start from the snapshot: %+v", sp)
	}
	want(e.doAs(e.keyB, "POST", "/v2/sandboxes", `{"templateID":"`+named.SnapshotID+`"}`), 400)
	del := "/templates/" + escapeSegment(named.SnapshotID)
	want(e.doAs(e.keyB, "DELETE", del, ""), 404)
	want(e.do("DELETE", del, ""), 400) // a sandbox made from it runs
	want(e.do("DELETE", "/sandboxes/"+child.SandboxID, ""), 204)
	want(e.do("DELETE", del, ""), 204)
	want(e.do("DELETE", del, ""), 404)
	want(e.do("DELETE", "/templates/"+escapeSegment(unnamed.SnapshotID), ""), 204)

	// Pauses that keep the files only, and resumes that boot fresh.
	want(e.do("POST", "/sandboxes/"+src.SandboxID+"/pause", `{"memory":false}`), 204)
	if !e.node.LastPauseFilesOnly(src.SandboxID) {
		t.Errorf("memory=false did not ask the node for a pause of the files")
	}
	want(e.do("POST", fork, `{}`), 409)
	want(e.do("POST", snaps, `{}`), 404)
	want(e.do("POST", "/v2/sandboxes/"+src.SandboxID+"/connect", `{"memory":false}`), 201)
	if !e.node.LastResumeCold(src.SandboxID) {
		t.Errorf("memory=false did not ask the node for a fresh boot")
	}
	want(e.do("POST", "/sandboxes", `{"autoPauseMemory":false}`), 400)
	want(e.do("POST", "/sandboxes", `{"autoPause":true,"autoPauseMemory":false,"autoResume":{"enabled":true}}`), 400)
	want(e.do("POST", "/sandboxes", `{"autoPause":true,"autoPauseMemory":false}`), 201)
}
