package api

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"lelantos.dev/lelantos/internal/controlplane"
	agentv1 "lelantos.dev/lelantos/internal/gen/agent/v1"
)

// doContent sends a volume content request with token as its bearer (none when
// ""), body of the given type, and checks it against the spec.
func (e *env) doContent(method, route, token, contentType, body string) *response {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, route, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	res := &response{Status: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
	validated := body
	if contentType == "application/octet-stream" {
		validated = "" // not a JSON body; its schema is any bytes
	}
	e.check(req, validated, res)
	return res
}

// contentURL is a content route of volume id with the given query.
func contentURL(id, kind string, q url.Values) string {
	return "/volumecontent/" + id + "/" + kind + "?" + q.Encode()
}

// entry is a decoded VolumeEntryStat.
type entry struct {
	Name, Type, Path string
	Size             int64
	Mode, UID, GID   uint32
	Target           string
}

// exerciseVolumes calls every volume route with its main outcomes: the volume
// routes with an API key, the content routes with the volume's token, and a sandbox
// mounting a volume.
func exerciseVolumes(t *testing.T, e *env, want func(*response, int) *response) {
	var vol volumeAndTokenJSON
	want(e.do("POST", "/volumes", `{"name":"data"}`), 201).decode(t, &vol)
	if !uuidRE.MatchString(vol.VolumeID) || vol.Name != "data" || vol.Token == "" || vol.SizeMB != 1024 {
		t.Fatalf("POST /volumes = %+v", vol)
	}
	if msg := want(e.do("POST", "/volumes", `{"name":"data"}`), 400).errorMessage(t); msg != "Volume with name 'data' already exists" {
		t.Errorf("duplicate name: %q", msg)
	}
	for _, body := range []string{`{}`, `{"name":"a.b"}`, `{"name":""}`, `{"name":7}`, `{"name":"x","sizeMB":0}`,
		`{"name":"x","sizeMB":8}`, `{"name":"x","sizeMB":99999999}`} {
		want(e.do("POST", "/volumes", body), 400)
	}
	var small volumeAndTokenJSON
	want(e.do("POST", "/volumes", `{"name":"small_one-2","sizeMB":64}`), 201).decode(t, &small)
	if small.SizeMB != 64 {
		t.Errorf("sizeMB: %+v", small)
	}
	var list []volumeJSON
	want(e.do("GET", "/volumes", ""), 200).decode(t, &list)
	if len(list) != 2 || list[0] != (volumeJSON{vol.VolumeID, "data"}) || list[1].Name != "small_one-2" {
		t.Errorf("GET /volumes = %+v", list)
	}
	var got volumeAndTokenJSON
	want(e.do("GET", "/volumes/"+vol.VolumeID, ""), 200).decode(t, &got)
	if got.VolumeID != vol.VolumeID || got.Name != "data" || got.Token == "" {
		t.Errorf("GET /volumes/{id} = %+v", got)
	}
	want(e.do("GET", "/volumes/not-a-uuid", ""), 400)
	want(e.do("GET", "/volumes/00000000-0000-4000-8000-000000000000", ""), 404)
	want(e.do("DELETE", "/volumes/00000000-0000-4000-8000-000000000000", ""), 404)

	// Content, with the token of POST and with the fresh one of GET.
	tok, id := vol.Token, vol.VolumeID
	q := func(kv ...string) url.Values {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	var ent entry
	want(e.doContent("POST", contentURL(id, "dir", q("path", "/docs", "uid", "1000", "gid", "1000", "mode", "488")), tok, "", ""), 201).decode(t, &ent)
	if ent.Type != "directory" || ent.Path != "/docs" || ent.Name != "docs" || ent.Mode != 0o750 || ent.UID != 1000 {
		t.Errorf("make dir = %+v", ent)
	}
	want(e.doContent("POST", contentURL(id, "dir", q("path", "/docs")), tok, "", ""), 409)
	want(e.doContent("POST", contentURL(id, "dir", q("path", "/docs", "force", "true")), tok, "", ""), 201)
	want(e.doContent("POST", contentURL(id, "dir", q("path", "/a/b/c")), tok, "", ""), 404)
	want(e.doContent("POST", contentURL(id, "dir", q("path", "/a/b/c", "force", "true")), tok, "", ""), 201)
	want(e.doContent("POST", contentURL(id, "dir", q("path", "/x", "mode", "99999")), tok, "", ""), 400)
	want(e.doContent("POST", contentURL(id, "dir", q("path", "/x", "force", "maybe")), tok, "", ""), 400)

	file := contentURL(id, "file", q("path", "/docs/hello.txt"))
	want(e.doContent("PUT", file, got.Token, "application/octet-stream", "hello volume"), 201).decode(t, &ent)
	if ent.Type != "file" || ent.Size != 12 || ent.Mode != 0o644 || ent.UID != 0 || ent.Path != "/docs/hello.txt" {
		t.Errorf("write = %+v", ent)
	}
	want(e.doContent("PUT", file, tok, "application/octet-stream", "again"), 409)
	want(e.doContent("PUT", contentURL(id, "file", q("path", "/docs/hello.txt", "force", "true", "mode", "384")), tok,
		"application/octet-stream", "hello again"), 201).decode(t, &ent)
	if ent.Size != 11 || ent.Mode != 0o600 {
		t.Errorf("forced write = %+v", ent)
	}
	want(e.doContent("PUT", contentURL(id, "file", q("path", "/nowhere/f")), tok, "application/octet-stream", "x"), 404)
	want(e.doContent("PUT", contentURL(id, "file", q("path", "/docs")), tok, "application/octet-stream", "x"), 409)
	want(e.doContent("PUT", contentURL(id, "file", q("path", "/empty")), tok, "application/octet-stream", ""), 201)

	read := want(e.doContent("GET", file, tok, "", ""), 200)
	if string(read.Body) != "hello again" || read.Header.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("read %q (%s)", read.Body, read.Header.Get("Content-Type"))
	}
	rreq := httptest.NewRequest("GET", file, nil)
	rreq.Header.Set("Authorization", "Bearer "+tok)
	rreq.Header.Set("Range", "bytes=6-")
	rrec := httptest.NewRecorder()
	e.h.ServeHTTP(rrec, rreq)
	res := &response{Status: rrec.Code, Header: rrec.Header(), Body: rrec.Body.Bytes()}
	e.check(rreq, "", res)
	if res.Status != http.StatusPartialContent || string(res.Body) != "again" {
		t.Errorf("range read: %d %q", res.Status, res.Body)
	}
	want(e.doContent("GET", contentURL(id, "file", q("path", "/docs")), tok, "", ""), 404)
	want(e.doContent("GET", contentURL(id, "file", q("path", "/missing")), tok, "", ""), 404)

	want(e.doContent("GET", contentURL(id, "path", q("path", "/docs/hello.txt")), tok, "", ""), 200).decode(t, &ent)
	if ent.Name != "hello.txt" || ent.Size != 11 {
		t.Errorf("stat = %+v", ent)
	}
	want(e.doContent("GET", contentURL(id, "path", q("path", "/missing")), tok, "", ""), 404)
	want(e.doContent("PATCH", contentURL(id, "path", q("path", "/docs/hello.txt")), tok, "application/json",
		`{"uid":1001,"gid":1002,"mode":420}`), 200).decode(t, &ent)
	if ent.UID != 1001 || ent.GID != 1002 || ent.Mode != 0o644 {
		t.Errorf("update = %+v", ent)
	}
	want(e.doContent("PATCH", contentURL(id, "path", q("path", "/missing")), tok, "application/json", `{"mode":420}`), 404)
	want(e.doContent("PATCH", contentURL(id, "path", q("path", "/docs")), tok, "application/json", `{"mode":-1}`), 400)

	var ents []entry
	want(e.doContent("GET", contentURL(id, "dir", q("path", "/")), tok, "", ""), 200).decode(t, &ents)
	if names := entryPaths(ents); names != "/a /docs /empty" {
		t.Errorf("list / = %s", names)
	}
	want(e.doContent("GET", contentURL(id, "dir", q("path", "/", "depth", "3")), tok, "", ""), 200).decode(t, &ents)
	if names := entryPaths(ents); names != "/a /a/b /a/b/c /docs /docs/hello.txt /empty" {
		t.Errorf("list / depth 3 = %s", names)
	}
	want(e.doContent("GET", contentURL(id, "dir", q("path", "/", "depth", "0")), tok, "", ""), 400)
	want(e.doContent("GET", contentURL(id, "dir", q("path", "/empty")), tok, "", ""), 404)
	want(e.doContent("GET", contentURL(id, "dir", q()), tok, "", ""), 400)

	want(e.doContent("DELETE", contentURL(id, "path", q("path", "/a")), tok, "", ""), 204)
	want(e.doContent("DELETE", contentURL(id, "path", q("path", "/a")), tok, "", ""), 404)
	want(e.doContent("DELETE", contentURL(id, "path", q("path", "/")), tok, "", ""), 404)

	// Tokens: none, garbage, another volume's, an API key.
	stat := contentURL(id, "path", q("path", "/docs"))
	for name, tk := range map[string]string{"none": "", "garbage": "abc.def.ghi", "another volume's": small.Token, "an API key": e.key} {
		if r := want(e.doContent("GET", stat, tk, "", ""), 401); !strings.Contains(string(r.Body), `"code":"401"`) {
			t.Errorf("%s token: body %s", name, r.Body)
		}
	}
	if r := e.doWith("GET", stat, "", http.Header{"X-Api-Key": {e.key}}); r.Status != 401 {
		t.Errorf("an API key instead of a token: %d", r.Status)
	}

	// A sandbox mounts volumes by name; its detail lists them.
	var sb sandboxJSON
	want(e.do("POST", "/v2/sandboxes", `{"templateID":"base","volumeMounts":[{"name":"data","path":"/mnt/data"},{"name":"small_one-2","path":"/srv"}]}`), 201).decode(t, &sb)
	var d detailJSON
	want(e.do("GET", "/sandboxes/"+sb.SandboxID, ""), 200).decode(t, &d)
	if len(d.VolumeMounts) != 2 || d.VolumeMounts[0] != (volumeMount{"data", "/mnt/data"}) || d.VolumeMounts[1] != (volumeMount{"small_one-2", "/srv"}) {
		t.Errorf("detail volumeMounts = %+v", d.VolumeMounts)
	}
	if mounts := nodeSpec(t, e, sb.SandboxID).GetVolumeMounts(); len(mounts) != 2 || mounts[0].GetVolumeId() != id ||
		mounts[0].GetPath() != "/mnt/data" || mounts[1].GetName() != "small_one-2" {
		t.Errorf("the node got mounts %v", mounts)
	}
	msg := want(e.do("POST", "/v2/sandboxes", `{"volumeMounts":[{"name":"nope","path":"/a"},{"name":"data","path":"rel"},{"name":"data","path":"/proc/x"},{"name":"data","path":"/srv"},{"name":"data","path":"/srv/in"}]}`), 400).errorMessage(t)
	if wantMsg := "volumeMounts: invalid mounts:\n\t- volume mount #0: volume 'nope' not found\n\t- volume mount #1: path must be absolute\n" +
		"\t- volume mount #2: path '/proc/x' is reserved (/proc holds the sandbox's own files)\n" +
		"\t- volume mount #4: path '/srv/in' and the path '/srv' of mount #3 are inside one another"; msg != wantMsg {
		t.Errorf("bad mounts: %q\nwant %q", msg, wantMsg)
	}
	// Another team sees none of it, and cannot mount it.
	want(e.doAs(e.keyB, "GET", "/volumes/"+id, ""), 404)
	want(e.doAs(e.keyB, "DELETE", "/volumes/"+id, ""), 404)
	var theirs []volumeJSON
	want(e.doAs(e.keyB, "GET", "/volumes", ""), 200).decode(t, &theirs)
	if len(theirs) != 0 {
		t.Errorf("team B lists %+v", theirs)
	}
	want(e.doAs(e.keyB, "POST", "/sandboxes", `{"volumeMounts":[{"name":"data","path":"/d"}]}`), 400)

	// A mounted volume stays until its sandboxes are gone.
	want(e.do("DELETE", "/volumes/"+id, ""), 409)
	want(e.do("POST", "/sandboxes/"+sb.SandboxID+"/pause", ""), 204)
	want(e.do("DELETE", "/volumes/"+id, ""), 409)
	want(e.do("DELETE", "/sandboxes/"+sb.SandboxID, ""), 204)
	want(e.do("DELETE", "/volumes/"+id, ""), 204)
	want(e.do("GET", "/volumes/"+id, ""), 404)
	want(e.doContent("GET", stat, tok, "", ""), 401)
	want(e.do("DELETE", "/volumes/"+small.VolumeID, ""), 204)
}

// nodeSpec is the spec the node got for sandbox id.
func nodeSpec(t *testing.T, e *env, id string) *agentv1.SandboxSpec {
	t.Helper()
	res, err := e.node.ListSandboxes(context.Background(), connect.NewRequest(&agentv1.ListSandboxesRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range res.Msg.GetSandboxes() {
		if st.GetSandboxId() == id {
			return st.GetSpec()
		}
	}
	t.Fatalf("the node has no sandbox %s", id)
	return nil
}

// entryPaths lists the paths of ents, space-separated.
func entryPaths(ents []entry) string {
	var out []string
	for _, e := range ents {
		out = append(out, e.Path)
	}
	return strings.Join(out, " ")
}

// TestVolumesOff checks that a server without volumes says so on every route.
func TestVolumesOff(t *testing.T) {
	e := newEnv(t)
	h := NewHandler(e.svc, controlplane.NewAuthenticator(e.db, nil), Options{Logger: quiet()})
	for _, r := range []struct{ method, path string }{
		{"POST", "/volumes"}, {"GET", "/volumes"}, {"GET", "/volumes/00000000-0000-4000-8000-000000000000"},
		{"DELETE", "/volumes/00000000-0000-4000-8000-000000000000"},
	} {
		req := httptest.NewRequest(r.method, r.path, strings.NewReader(`{"name":"x"}`))
		req.Header.Set("X-API-Key", e.key)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "use of volumes is not enabled") {
			t.Errorf("%s %s: %d %s", r.method, r.path, rec.Code, rec.Body)
		}
	}
	req := httptest.NewRequest("GET", "/volumecontent/00000000-0000-4000-8000-000000000000/path?path=/", nil)
	req.Header.Set("Authorization", "Bearer x")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Errorf("content without volumes: %d", rec.Code)
	}
}
