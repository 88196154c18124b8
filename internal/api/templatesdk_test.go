package api

import (
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// putUpload sends an upload as the e2b SDK does: PUT to the link, no API
// key, the archive as the body; checked against openapi.yaml.
func (e *env) putUpload(link string, body []byte) *response {
	e.t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		e.t.Fatal(err)
	}
	req := httptest.NewRequest("PUT", u.RequestURI(), strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/octet-stream")
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	res := &response{Status: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
	e.check(req, string(body), res)
	return res
}

// exerciseTemplateSDK drives E2B's build API as the e2b SDK's Template.build
// does (request, upload links and uploads, start with steps, status), and
// the alias and tag routes; it is part of TestSpecConformance.
func exerciseTemplateSDK(t *testing.T, e *env, want func(*response, int) *response) {
	// Request: name:tag puts the tag first; tags are deduplicated.
	var req buildRequestedJSON
	want(e.do("POST", "/v3/templates", `{"name":"SDK-App:v1","tags":["v1","latest"],"cpuCount":1,"memoryMB":512,"minFreeDiskMb":64}`), 202).decode(t, &req)
	if req.TemplateID != "sdk-app" || req.BuildID == "" || req.Public || strings.Join(req.Tags, ",") != "v1,latest" ||
		strings.Join(req.Names, ",") != "sdk-app" || strings.Join(req.Aliases, ",") != "sdk-app" {
		t.Errorf("requested build %+v", req)
	}
	if r := e.builder.requests[req.BuildID]; r.Name != "sdk-app" || r.CPUCount != 1 || r.MemoryMB != 512 || r.DiskSizeMB != 128 {
		t.Errorf("the builder reserved %+v", r)
	}
	for body, field := range map[string]string{
		`{}`:                            "name: Name is required",
		`{"name":"other-team/app"}`:     "name: namespace",
		`{"name":"app:"}`:               "name: an empty tag",
		`{"name":"app","tags":["A B"]}`: "tags: tag",
		`{"name":"base"}`:               `name: "base" is reserved`,
		`{"name":"app","cpuCount":-1}`:  "cpuCount",
		`{"name":"a/b/c"}`:              "name: namespace",
	} {
		if msg := want(e.do("POST", "/v3/templates", body), 400).errorMessage(t); !strings.HasPrefix(msg, field) {
			t.Errorf("%s: %q, want it to start with %q", body, msg, field)
		}
	}
	want(e.do("POST", "/v3/templates", `{"name":"default/dflt-app"}`), 202) // the caller's team's slug

	status := "/templates/sdk-app/builds/" + req.BuildID + "/status"
	var st buildInfoJSON
	want(e.do("GET", status, ""), 200).decode(t, &st)
	if st.Status != "waiting" || st.LogEntries == nil {
		t.Errorf("a requested build: %+v", st)
	}

	// Upload links: per team, signed; the upload needs no key.
	hash := strings.Repeat("0a", 32)
	var link fileUploadJSON
	want(e.do("GET", "/templates/sdk-app/files/"+hash, ""), 201).decode(t, &link)
	if link.Present || !strings.Contains(link.URL, "/templates/sdk-app/files/"+hash+"?") || !strings.Contains(link.URL, "signature=") {
		t.Errorf("upload link %+v", link)
	}
	want(e.do("GET", "/templates/sdk-app/files/ABC", ""), 400)
	want(e.doAs(e.keyB, "GET", "/templates/sdk-app/files/"+hash, ""), 404)
	want(e.do("GET", "/templates/nosuch/files/"+hash, ""), 404)
	archive := tarOf(t, map[string]string{"app/main.py": "print('hi')\n"})
	tampered := strings.Replace(link.URL, "signature=", "signature=00", 1)
	want(e.putUpload(tampered, archive), 403)
	otherHash := strings.Replace(link.URL, hash, strings.Repeat("0b", 32), 1)
	want(e.putUpload(otherHash, archive), 403) // the signature covers the hash
	want(e.putUpload(strings.Split(link.URL, "?")[0], archive), 403)
	want(e.putUpload(link.URL, archive), 201)
	if got := e.builder.files[e.teamDefault()+"/"+hash]; string(got) != string(archive) {
		t.Errorf("the builder has %d bytes for the hash, want the archive", len(got))
	}
	want(e.do("GET", "/templates/sdk-app/files/"+hash, ""), 201).decode(t, &link)
	if !link.Present {
		t.Errorf("an uploaded hash is not present: %+v", link)
	}
	var otherTeam buildRequestedJSON
	want(e.doAs(e.keyB, "POST", "/v3/templates", `{"name":"sdk-app"}`), 202).decode(t, &otherTeam)
	want(e.doAs(e.keyB, "GET", "/templates/sdk-app/files/"+hash, ""), 201).decode(t, &link)
	if link.Present || otherTeam.TemplateID == req.TemplateID {
		t.Errorf("team B sees team A's upload (%+v) or template (%s)", link, otherTeam.TemplateID)
	}

	// Start with the steps the SDK sends.
	start := map[string]any{
		"fromTemplate": "base", "force": false, "startCmd": "python3 -m http.server 8000", "readyCmd": "ss -Htuln sport = :8000 | grep -q .",
		"steps": []map[string]any{
			{"type": "RUN", "args": []string{"apt-get update && apt-get install -y jq", "root"}, "force": false},
			{"type": "COPY", "args": []string{"app", "/home/user/app", "", ""}, "filesHash": hash, "force": false,
				"forceUpload": false, "resolveSymlinks": false, "gzip": true},
			{"type": "ENV", "args": []string{"A", "1"}},
			{"type": "WORKDIR", "args": []string{"/home/user/app"}},
			{"type": "USER", "args": []string{"user"}},
		},
	}
	body, _ := json.Marshal(start)
	path := "/v2/templates/sdk-app/builds/" + req.BuildID
	want(e.doAs(e.keyB, "POST", path, string(body)), 404)
	want(e.do("POST", "/v2/templates/sdk-app/builds/00000000-0000-4000-8000-000000000000", string(body)), 404)
	for bad, field := range map[string]string{
		`{"steps":[]}`: "fromImage: exactly one",
		`{"fromImage":"python:3","fromTemplate":"base"}`:                              "fromImage: exactly one",
		`{"fromImage":"x","fromImageRegistry":{"type":"aws","awsAccessKeyId":"a"}}`:   "fromImageRegistry: type aws",
		`{"fromImage":"x","fromImageRegistry":{"type":"registry","username":"u"}}`:    "fromImageRegistry: type registry",
		`{"fromTemplate":"base","steps":[{"args":["x"]}]}`:                            "steps[0].type: required",
		`{"fromTemplate":"base","readyCmd":"true"}`:                                   "readyCmd: needs a startCmd",
		`{"fromTemplate":"base","steps":"RUN"}`:                                       "steps",
		`{"fromTemplate":"base","steps":[{"type":"RUN","args":["x"],"filesHash":7}]}`: "steps.filesHash",
	} {
		if msg := want(e.do("POST", path, bad), 400).errorMessage(t); !strings.HasPrefix(msg, field) {
			t.Errorf("%s: %q, want it to start with %q", bad, msg, field)
		}
	}
	r := want(e.do("POST", path, string(body)), 202)
	if len(r.Body) != 0 || r.Header.Get("Content-Length") != "0" {
		t.Errorf("start answered %q, headers %v", r.Body, r.Header)
	}
	got := e.builder.requests[req.BuildID]
	if got.Spec == nil || got.Spec.FromTemplate != "base" || len(got.Spec.Steps) != 5 || got.Spec.Steps[1].FilesHash != hash ||
		got.TeamID != e.teamDefault() || got.StartCmd != "python3 -m http.server 8000" || got.CPUCount != 1 ||
		strings.Join(got.Tags, ",") != "v1,latest" || got.Spec.Steps[0].Args[1] != "root" {
		t.Errorf("the builder started %+v (spec %+v)", got, got.Spec)
	}
	if msg := want(e.do("POST", path, string(body)), 400).errorMessage(t); !strings.Contains(msg, "not waiting") {
		t.Errorf("a second start: %q", msg)
	}
	want(e.do("GET", status, ""), 200).decode(t, &st)
	if st.Status != "building" {
		t.Errorf("a started build: %+v", st)
	}
	if err := e.builder.finish(req.BuildID, ""); err != nil {
		t.Fatal(err)
	}

	// Existence, as Template.exists asks.
	var alias aliasJSON
	want(e.do("GET", "/templates/aliases/sdk-app", ""), 200).decode(t, &alias)
	if alias.TemplateID != "sdk-app" || alias.Public {
		t.Errorf("alias %+v", alias)
	}
	want(e.do("GET", "/templates/aliases/sdk-app:v1", ""), 200)
	want(e.do("GET", "/templates/aliases/base", ""), 200).decode(t, &alias)
	if !alias.Public {
		t.Errorf("base is public: %+v", alias)
	}
	if msg := want(e.do("GET", "/templates/aliases/sdk-app:nope", ""), 404).errorMessage(t); msg != "tag 'nope' does not exist for template 'sdk-app'" {
		t.Errorf("a missing tag: %q", msg)
	}
	want(e.do("GET", "/templates/aliases/nosuch", ""), 404)
	want(e.doAs(e.keyB, "GET", "/templates/aliases/web2", ""), 404)
	want(e.do("GET", "/templates/aliases/someone%2Fsdk-app", ""), 400)

	// Tags: list, assign from a tag, remove.
	var tags []tagJSON
	want(e.do("GET", "/templates/sdk-app/tags", ""), 200).decode(t, &tags)
	if len(tags) != 3 || tags[0].Tag != "default" || tags[0].BuildID != req.BuildID || tags[1].Tag != "latest" || tags[2].Tag != "v1" {
		t.Errorf("tags %+v", tags)
	}
	var assigned assignedTagsJSON
	want(e.do("POST", "/templates/tags", `{"target":"sdk-app:v1","tags":["prod","Prod"]}`), 201).decode(t, &assigned)
	if assigned.BuildID != req.BuildID || strings.Join(assigned.Tags, ",") != "prod" {
		t.Errorf("assigned %+v", assigned)
	}
	want(e.do("POST", "/templates/tags", `{"target":"sdk-app:v1","tags":[]}`), 400)
	want(e.do("POST", "/templates/tags", `{"target":"sdk-app:nope","tags":["x"]}`), 404)
	want(e.doAs(e.keyB, "POST", "/templates/tags", `{"target":"sdk-app:v1","tags":["x"]}`), 404)
	want(e.doAs(e.keyB, "GET", "/templates/sdk-app/tags", ""), 404)
	var sb sandboxJSON
	want(e.do("POST", "/v2/sandboxes", `{"templateID":"sdk-app:prod"}`), 201).decode(t, &sb)
	if sb.TemplateID != "sdk-app" {
		t.Errorf("a sandbox of sdk-app:prod: %+v", sb)
	}
	want(e.do("POST", "/v2/sandboxes", `{"templateID":"sdk-app:nope"}`), 400)
	want(e.do("DELETE", "/sandboxes/"+sb.SandboxID, ""), 204)
	want(e.do("DELETE", "/templates/tags", `{"name":"sdk-app","tags":["prod"]}`), 204)
	want(e.do("DELETE", "/templates/tags", `{"name":"sdk-app","tags":["default"]}`), 400)
	want(e.do("DELETE", "/templates/tags", `{"name":"sdk-app:v1","tags":["v1"]}`), 400)
	want(e.do("DELETE", "/templates/tags", `{"name":"sdk-app","tags":["prod"]}`), 404)
	want(e.do("GET", "/templates/aliases/sdk-app:prod", ""), 404)

	// The list shape E2B's CLI reads: the name among the aliases.
	var list []templateJSON
	want(e.do("GET", "/templates", ""), 200).decode(t, &list)
	found := false
	for _, tpl := range list {
		if tpl.TemplateID == "sdk-app" {
			found = len(tpl.Aliases) > 0 && tpl.Aliases[0] == "sdk-app"
		}
	}
	if !found {
		t.Errorf("GET /templates has no sdk-app named in its aliases: %+v", list)
	}

	// A failed build names its step.
	if err := e.builder.finishAt(otherTeam.BuildID, "step 3 (COPY): no file matches", "3"); err != nil {
		t.Fatal(err)
	}
	want(e.doAs(e.keyB, "GET", "/templates/"+otherTeam.TemplateID+"/builds/"+otherTeam.BuildID+"/status", ""), 200).decode(t, &st)
	if st.Status != "error" || st.Reason == nil || st.Reason.Step != "3" {
		t.Errorf("a failed build's reason: %+v", st.Reason)
	}
}

// teamDefault is the ID of the default team, whose key e.key is.
func (e *env) teamDefault() string { return "00000000-0000-0000-0000-000000000000" }
