package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeAPI serves POST /templates and the build status route: the build
// answers `pages` status pages, then ends with final (and reason).
type fakeAPI struct {
	mu sync.Mutex
	// query, contentType and body are those of the build request.
	query       url.Values
	contentType string
	body        []byte
	key         string
	logs        []string
	final       string
	reason      string
	offsets     []int
	deleted     []string
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.key = r.Header.Get("X-API-Key")
	switch {
	case r.Method == "POST" && r.URL.Path == "/templates":
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		f.query, f.contentType, f.body = r.URL.Query(), r.Header.Get("Content-Type"), body
		w.WriteHeader(202)
		fmt.Fprintf(w, `{"templateID":%q,"buildID":"b-1"}`, f.query.Get("name"))
	case r.Method == "GET" && r.URL.Path == "/templates/web/builds/b-1/status":
		off, _ := strconv.Atoi(r.URL.Query().Get("logsOffset"))
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		f.offsets = append(f.offsets, off)
		end := min(off+limit, len(f.logs))
		// Finished only once every line was fetched at least once.
		status := "building"
		if len(f.offsets) > 2 {
			status = f.final
		}
		var entries []map[string]string
		for _, l := range f.logs[min(off, len(f.logs)):end] {
			entries = append(entries, map[string]string{"message": l, "level": "info"})
		}
		out := map[string]any{"status": status, "logEntries": entries}
		if status == "error" {
			out["reason"] = map[string]string{"message": f.reason}
		}
		json.NewEncoder(w).Encode(out)
	case r.Method == "DELETE" && strings.HasPrefix(r.URL.Path, "/templates/"):
		name := strings.TrimPrefix(r.URL.Path, "/templates/")
		if name == "base" {
			w.WriteHeader(409)
			fmt.Fprint(w, `{"code":409,"message":"template \"base\" is the default template and cannot be deleted"}`)
			return
		}
		f.deleted = append(f.deleted, name)
		w.WriteHeader(204)
	default:
		http.Error(w, "no route", 404)
	}
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestTemplateBuildCommand(t *testing.T) {
	logs := make([]string, 150)
	for i := range logs {
		logs[i] = fmt.Sprintf("line %d", i)
	}
	tests := []struct {
		name, final, reason string
		wantErr             string
	}{
		{name: "ready", final: "ready"},
		{name: "failed", final: "error", reason: "step 2/2 (line 2, RUN): exit code 1", wantErr: "exit code 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := &fakeAPI{logs: logs, final: tt.final, reason: tt.reason}
			srv := httptest.NewServer(api)
			defer srv.Close()
			t.Setenv("E2B_API_URL", srv.URL)
			t.Setenv("E2B_API_KEY", "e2b_test")
			dir := writeFiles(t, map[string]string{"Dockerfile": "FROM base\nCOPY app /app\n", "app/x.txt": "hello"})
			var out bytes.Buffer
			err := templateBuild(context.Background(), []string{"-n", "web", "--cpu", "1", "--memory", "256",
				"--build-arg", "A=1", "--build-arg", "B=x=y", dir, "--start-cmd", "serve", "--ready-cmd", "true"}, &out)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if api.key != "e2b_test" {
				t.Errorf("API key %q", api.key)
			}
			q := api.query
			if api.contentType != "application/gzip" || q.Get("name") != "web" || q.Get("dockerfile") != "FROM base\nCOPY app /app\n" ||
				q.Get("cpuCount") != "1" || q.Get("memoryMB") != "256" || q.Has("diskSizeMB") || q.Get("startCmd") != "serve" ||
				q.Get("readyCmd") != "true" || fmt.Sprint(q["buildArg"]) != "[A=1 B=x=y]" {
				t.Errorf("build request %s with %v", api.contentType, q)
			}
			zr, err := gzip.NewReader(bytes.NewReader(api.body))
			if err != nil {
				t.Fatal(err)
			}
			got := t.TempDir()
			if err := extractContext(zr, got); err != nil {
				t.Fatal(err)
			}
			if data, err := os.ReadFile(filepath.Join(got, "app/x.txt")); err != nil || string(data) != "hello" {
				t.Errorf("context app/x.txt: %q %v", data, err)
			}
			text := out.String()
			for i, l := range logs {
				if !strings.Contains(text, l+"\n") {
					t.Fatalf("output lacks %q (line %d): %s", l, i, text)
				}
			}
			if strings.Count(text, "line 7\n") != 1 {
				t.Errorf("a line printed twice: %s", text)
			}
			if api.offsets[0] != 0 || api.offsets[1] != 100 {
				t.Errorf("offsets asked %v, want 0 then 100", api.offsets)
			}
			if tt.final == "ready" && !strings.Contains(text, "Template web is ready") {
				t.Errorf("no ready line: %s", text)
			}
		})
	}
}

func TestTemplateCommandErrors(t *testing.T) {
	dir := writeFiles(t, map[string]string{"Dockerfile": "FROM base\n"})
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no subcommand", nil, nil, "a subcommand is required"},
		{"unknown subcommand", nil, []string{"push"}, `unknown subcommand "push"`},
		{"unknown flag", nil, []string{"build", "-n", "web", "--gpu", "1", dir}, "-gpu"},
		{"bad cpu", nil, []string{"build", "-n", "web", "--cpu", "two", dir}, "-cpu"},
		{"bad build arg", nil, []string{"build", "-n", "web", "--build-arg", "NOVALUE", dir}, "-build-arg"},
		{"no name", nil, []string{"build", dir}, "-n NAME is required"},
		{"no context", nil, []string{"build", "-n", "web"}, "CONTEXT"},
		{"context not a directory", nil, []string{"build", "-n", "web", filepath.Join(dir, "Dockerfile")}, "not a directory"},
		{"no Dockerfile", nil, []string{"build", "-n", "web", "-f", filepath.Join(dir, "nope"), dir}, "-f"},
		{"no API URL", map[string]string{"E2B_API_URL": "", "E2B_API_KEY": "k"}, []string{"build", "-n", "web", dir}, "E2B_API_URL"},
		{"no API key", map[string]string{"E2B_API_URL": "http://127.0.0.1:1", "E2B_API_KEY": ""}, []string{"ls"}, "E2B_API_KEY"},
		{"bad API URL", map[string]string{"E2B_API_KEY": "k"}, []string{"ls", "--api-url", "localhost:3000"}, "http://"},
		{"rm without a name", nil, []string{"rm"}, "NAME"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			err := templateCmd(context.Background(), tt.args)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestTemplateRemoveCommand(t *testing.T) {
	api := &fakeAPI{}
	srv := httptest.NewServer(api)
	defer srv.Close()
	var out bytes.Buffer
	err := templateRemove(context.Background(), []string{"--api-url", srv.URL, "--api-key", "k", "web", "base"}, &out)
	if err == nil || !strings.Contains(err.Error(), "template rm base: template \"base\" is the default template") {
		t.Errorf("err = %v, want the server's message", err)
	}
	if len(api.deleted) != 1 || api.deleted[0] != "web" || !strings.Contains(out.String(), "deleted template web") {
		t.Errorf("deleted %v, output %q", api.deleted, out.String())
	}
}
