package api

import (
	"archive/tar"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/controlplane"
)

// tarOf returns a tar archive of name -> content.
func tarOf(t testing.TB, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, content := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// exerciseTemplates calls every template route with its main outcomes; it is
// part of TestSpecConformance, which checks each answer against openapi.yaml.
func exerciseTemplates(t *testing.T, e *env, want func(*response, int) *response) {
	var list []templateJSON
	want(e.do("GET", "/templates", ""), 200).decode(t, &list)
	if len(list) != 2 || list[0].TemplateID != "base" || list[0].BuildStatus != "ready" || list[0].BuildCount != 1 ||
		list[0].CreatedBy != nil || list[0].LastSpawnedAt != nil || list[1].Names[1] != "python" {
		t.Errorf("template list %+v", list)
	}

	archive := tarOf(t, map[string]string{"hello.sh": "echo hi\n"})
	body, _ := json.Marshal(map[string]any{
		"name": "web", "dockerfile": "FROM base\nCOPY hello.sh /\n", "context": base64.StdEncoding.EncodeToString(archive),
		"startCmd": "python3 -m http.server 8080", "readyCmd": "curl -sf localhost:8080", "cpuCount": 1, "memoryMB": 256,
		"diskSizeMB": 512, "buildArgs": map[string]string{"V": "1"},
	})
	var started buildStartedJSON
	want(e.do("POST", "/templates", string(body)), 202).decode(t, &started)
	req := e.builder.requests[started.BuildID]
	if started.TemplateID != "web" || req.Name != "web" || req.CPUCount != 1 || req.MemoryMB != 256 || req.DiskSizeMB != 512 ||
		req.ReadyCmd != "curl -sf localhost:8080" || req.BuildArgs["V"] != "1" || !bytes.Equal(e.builder.contexts[started.BuildID], archive) {
		t.Errorf("build started %+v; the builder got %+v", started, req)
	}
	t0 := time.Now().UTC()
	e.builder.log(started.BuildID,
		controlplane.TemplateLogEntry{Timestamp: t0, Level: "info", Message: "Step 1/2 : FROM base"},
		controlplane.TemplateLogEntry{Timestamp: t0.Add(time.Second), Level: "info", Message: "Step 2/2 : COPY hello.sh /"},
		controlplane.TemplateLogEntry{Timestamp: t0.Add(2 * time.Second), Level: "error", Message: "warning, sort of"})
	statusPath := "/templates/web/builds/" + started.BuildID + "/status"
	var st buildInfoJSON
	want(e.do("GET", statusPath+"?logsOffset=0&limit=2", ""), 200).decode(t, &st)
	if st.Status != "building" || len(st.Logs) != 2 || st.Logs[1] != "Step 2/2 : COPY hello.sh /" || st.Reason != nil ||
		len(st.LogEntries) != 2 || st.LogEntries[0].Level != "info" {
		t.Errorf("status from 0, limit 2: %+v", st)
	}
	want(e.do("GET", statusPath+"?logsOffset=2", ""), 200).decode(t, &st)
	if len(st.Logs) != 1 || st.LogEntries[0].Level != "error" {
		t.Errorf("status from 2: %+v", st)
	}
	want(e.do("GET", statusPath+"?level=error", ""), 200).decode(t, &st)
	if len(st.Logs) != 1 || st.Logs[0] != "warning, sort of" {
		t.Errorf("status at level error: %+v", st)
	}
	want(e.do("GET", statusPath+"?limit=0", ""), 200).decode(t, &st)
	if len(st.Logs) != 0 {
		t.Errorf("status with limit 0: %+v", st)
	}

	logsPath := "/templates/web/builds/" + started.BuildID + "/logs"
	var logs buildLogsJSON
	want(e.do("GET", logsPath, ""), 200).decode(t, &logs)
	if len(logs.Logs) != 3 {
		t.Errorf("logs: %+v", logs)
	}
	want(e.do("GET", logsPath+"?direction=backward&limit=1", ""), 200).decode(t, &logs)
	if len(logs.Logs) != 1 || logs.Logs[0].Message != "warning, sort of" {
		t.Errorf("newest log entry: %+v", logs)
	}
	want(e.do("GET", logsPath+fmt.Sprintf("?cursor=%d", t0.Add(time.Second).UnixMilli()), ""), 200).decode(t, &logs)
	if len(logs.Logs) != 2 || logs.Logs[0].Message != "Step 2/2 : COPY hello.sh /" {
		t.Errorf("logs from the second entry's time: %+v", logs)
	}
	want(e.do("GET", logsPath+fmt.Sprintf("?cursor=%d&direction=backward", t0.Add(time.Second).UnixMilli()), ""), 200).decode(t, &logs)
	if len(logs.Logs) != 2 || logs.Logs[0].Message != "Step 2/2 : COPY hello.sh /" {
		t.Errorf("logs up to the second entry's time, backward: %+v", logs)
	}

	// Not a template yet: its first build runs.
	want(e.do("GET", "/templates/web", ""), 404)
	if err := e.builder.finish(started.BuildID, ""); err != nil {
		t.Fatal(err)
	}
	want(e.do("GET", statusPath, ""), 200).decode(t, &st)
	if st.Status != "ready" || len(st.Logs) != 3 {
		t.Errorf("status when ready: %+v", st)
	}
	var web templateWithBuildsJSON
	want(e.do("GET", "/templates/web", ""), 200).decode(t, &web)
	if web.TemplateID != "web" || len(web.Builds) != 1 || web.Builds[0].BuildID != started.BuildID ||
		web.Builds[0].Status != "ready" || web.Builds[0].CPUCount != 1 || web.Builds[0].FinishedAt == nil {
		t.Errorf("template web: %+v", web)
	}
	want(e.do("GET", "/templates/python", ""), 200)

	// A failed rebuild: the template stays, its newest build is in error.
	var again buildStartedJSON
	want(e.do("POST", "/templates", `{"name":"web","dockerfile":"FROM base\nRUN false\n"}`), 202).decode(t, &again)
	if err := e.builder.finish(again.BuildID, "step 2/2 (line 2, RUN): exit code 1"); err != nil {
		t.Fatal(err)
	}
	want(e.do("GET", "/templates/web/builds/"+again.BuildID+"/status", ""), 200).decode(t, &st)
	if st.Status != "error" || st.Reason == nil || !strings.Contains(st.Reason.Message, "line 2") {
		t.Errorf("failed build: %+v", st)
	}
	want(e.do("GET", "/templates", ""), 200).decode(t, &list)
	if len(list) != 3 || list[2].TemplateID != "web" || list[2].BuildStatus != "error" || list[2].BuildCount != 2 ||
		list[2].BuildID != started.BuildID {
		t.Errorf("list after a failed rebuild: %+v", list)
	}

	// Unknown builds and builds of another template.
	want(e.do("GET", "/templates/web/builds/00000000-0000-4000-8000-999999999999/status", ""), 404)
	want(e.do("GET", "/templates/python/builds/"+started.BuildID+"/status", ""), 404)
	want(e.do("GET", "/templates/web/builds/nope/logs", ""), 404)

	// Delete: refused while used, for base; then gone.
	var sb sandboxJSON
	want(e.do("POST", "/v2/sandboxes", `{"templateID":"web"}`), 201).decode(t, &sb)
	if r := want(e.do("DELETE", "/templates/web", ""), 409); !strings.Contains(r.errorMessage(t), "in use") {
		t.Errorf("delete of a used template: %s", r.Body)
	}
	want(e.do("DELETE", "/sandboxes/"+sb.SandboxID, ""), 204)
	want(e.do("DELETE", "/templates/web", ""), 204)
	want(e.do("DELETE", "/templates/web", ""), 404)
	want(e.do("GET", "/templates/web", ""), 404)
	if r := want(e.do("DELETE", "/templates/base", ""), 409); !strings.Contains(r.errorMessage(t), "default template") {
		t.Errorf("delete base: %s", r.Body)
	}
	want(e.do("POST", "/templates", `{"name":"web"}`), 400)
	want(e.do("GET", statusPath+"?limit=101", ""), 400)

	exerciseTemplateSDK(t, e, want)
}

// TestTemplateBadInput checks that bad template requests are 400s naming the
// field and never reach the builder.
func TestTemplateBadInput(t *testing.T) {
	e := newEnv(t)
	var st buildStartedJSON
	e.do("POST", "/templates", `{"name":"ok","dockerfile":"FROM base"}`).decode(t, &st)
	status := "/templates/ok/builds/" + st.BuildID + "/status"
	logs := "/templates/ok/builds/" + st.BuildID + "/logs"
	const df = `"dockerfile":"FROM base"`
	tests := []struct {
		name, method, path, body string
		wantField                string
	}{
		{"no body", "POST", "/templates", ``, "name: required"},
		{"no name", "POST", "/templates", `{` + df + `}`, "name: required"},
		{"empty name", "POST", "/templates", `{"name":"",` + df + `}`, "name: required"},
		{"name number", "POST", "/templates", `{"name":5,` + df + `}`, "name"},
		{"name upper case", "POST", "/templates", `{"name":"Web",` + df + `}`, "name: "},
		{"name with a slash", "POST", "/templates", `{"name":"a/b",` + df + `}`, "name: "},
		{"name base", "POST", "/templates", `{"name":"base",` + df + `}`, `name: "base" is reserved`},
		{"name an alias", "POST", "/templates", `{"name":"python",` + df + `}`, `name: "python" is an alias`},
		{"no dockerfile", "POST", "/templates", `{"name":"web"}`, "dockerfile: required"},
		{"dockerfile array", "POST", "/templates", `{"name":"web","dockerfile":["FROM base"]}`, "dockerfile"},
		{"cpuCount string", "POST", "/templates", `{"name":"web",` + df + `,"cpuCount":"2"}`, "cpuCount"},
		{"cpuCount fraction", "POST", "/templates", `{"name":"web",` + df + `,"cpuCount":1.5}`, "cpuCount"},
		{"cpuCount too many", "POST", "/templates", `{"name":"web",` + df + `,"cpuCount":65}`, "cpuCount: "},
		{"cpuCount huge", "POST", "/templates", `{"name":"web",` + df + `,"cpuCount":99999999999}`, "cpuCount: "},
		{"memoryMB too little", "POST", "/templates", `{"name":"web",` + df + `,"memoryMB":64}`, "memoryMB: "},
		{"diskSizeMB negative", "POST", "/templates", `{"name":"web",` + df + `,"diskSizeMB":-1}`, "diskSizeMB: "},
		{"readyCmd alone", "POST", "/templates", `{"name":"web",` + df + `,"readyCmd":"true"}`, "readyCmd: "},
		{"buildArgs value number", "POST", "/templates", `{"name":"web",` + df + `,"buildArgs":{"A":1}}`, "buildArgs.A"},
		{"buildArgs not object", "POST", "/templates", `{"name":"web",` + df + `,"buildArgs":[]}`, "buildArgs"},
		{"context not base64", "POST", "/templates", `{"name":"web",` + df + `,"context":"!!not base64!!"}`, "context: "},
		{"context number", "POST", "/templates", `{"name":"web",` + df + `,"context":7}`, "context"},
		{"logsOffset negative", "GET", status + "?logsOffset=-1", ``, "logsOffset"},
		{"logsOffset word", "GET", status + "?logsOffset=x", ``, "logsOffset"},
		{"limit too big", "GET", status + "?limit=101", ``, "limit"},
		{"level unknown", "GET", status + "?level=loud", ``, "level"},
		{"direction unknown", "GET", logs + "?direction=sideways", ``, "direction"},
		{"cursor negative", "GET", logs + "?cursor=-5", ``, "cursor"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(e.builder.requests)
			r := e.do(tt.method, tt.path, tt.body)
			if r.Status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", r.Status, r.Body)
			}
			if msg := r.errorMessage(t); !strings.HasPrefix(msg, tt.wantField) {
				t.Errorf("message %q does not start with %q", msg, tt.wantField)
			}
			if len(e.builder.requests) != before {
				t.Errorf("the builder was asked to build")
			}
		})
	}
}

// TestBuildBodyLimit shows that POST /templates takes bodies above the
// other routes' limit, up to its own.
func TestBuildBodyLimit(t *testing.T) {
	e := newEnv(t)
	e.h = NewHandler(e.svc, controlplane.NewAuthenticator(e.db, nil), Options{Logger: quiet(), Templates: e.svc, MaxBuildBodyBytes: 3 << 20})
	big := base64.StdEncoding.EncodeToString(tarOf(t, map[string]string{"blob": strings.Repeat("x", 3<<19)}))
	body := `{"name":"big","dockerfile":"FROM base","context":"` + big + `"}`
	if r := e.do("POST", "/templates", body); r.Status != http.StatusAccepted {
		t.Fatalf("a %d-byte build: status %d: %s", len(body), r.Status, r.Body)
	}
	if r := e.do("POST", "/sandboxes", `{"metadata":{"x":"`+strings.Repeat("x", 2<<20)+`"}}`); r.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("a 2 MiB create: status %d, want 413", r.Status)
	}
	huge := `{"name":"big","dockerfile":"FROM base","context":"` + strings.Repeat("A", 4<<20) + `"}`
	if r := e.do("POST", "/templates", huge); r.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("a 4 MiB build: status %d, want 413", r.Status)
	}
}
