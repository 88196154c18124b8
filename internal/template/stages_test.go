package template_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	"lelantos.dev/lelantos/internal/engine"
	"lelantos.dev/lelantos/internal/gen/envd/process"
	"lelantos.dev/lelantos/internal/gen/envd/process/processconnect"
	"lelantos.dev/lelantos/internal/template"
)

// multiStage is a Dockerfile as people write them: ARG before FROM, a build
// stage with heredocs (plain and a script), a cache mount, SHELL, a stage the
// template does not need, and a final stage with LABEL, COPY --from, a
// heredoc COPY, EXPOSE, CMD and HEALTHCHECK.
const multiStage = `# syntax=docker/dockerfile:1
ARG GREETING=hello
FROM base AS build
ARG GREETING
RUN <<EOF
mkdir -p /out
echo "$GREETING from a heredoc" > /out/greeting.txt
EOF
RUN <<EOF
#!/usr/bin/python3
open("/out/script.txt", "w").write("written by a heredoc script\n")
EOF
SHELL ["/bin/bash", "-c"]
RUN --mount=type=cache,target=/var/cache/demo [[ -n "$BASH_VERSION" ]] && echo bash-ran > /out/shell.txt && echo scratch > /var/cache/demo/x

FROM base AS unused
RUN echo never-built

FROM base
LABEL org.example.app="demo" org.example.stage=final
COPY --from=build /out/ /srv/
COPY <<EOF /srv/index.html
<h1>multi-stage</h1>
EOF
EXPOSE 8000/tcp
WORKDIR /srv
CMD ["python3", "-m", "http.server", "8000"]
HEALTHCHECK --interval=1s CMD curl -sf localhost:8000/index.html
`

// TestMultiStageBuild builds multiStage: only the stages the template needs
// run, the CMD becomes the start command and the HEALTHCHECK its ready
// command, and a sandbox of the template serves what the build stage made.
func TestMultiStageBuild(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	var log syncBuffer
	res, err := h.builder.Build(ctx, template.BuildRequest{Name: "staged", Dockerfile: multiStage, BuildArgs: map[string]string{"GREETING": "hi"},
		CPUCount: 1, MemoryMB: 512, DiskSizeMB: 1024}, &log)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, log.String())
	}
	out := log.String()
	if strings.Contains(out, "never-built") {
		t.Errorf("the unused stage was built:\n%s", out)
	}
	m := res.Metadata
	if m.StartCmd != "python3 -m http.server 8000" || m.ReadyCmd != "curl -sf localhost:8000/index.html" || m.SnapshotDir == "" ||
		m.Labels["org.example.app"] != "demo" || m.Labels["org.example.stage"] != "final" || !slices.Equal(m.ExposedPorts, []string{"8000/tcp"}) ||
		m.DefaultWorkdir != "/srv" {
		t.Errorf("metadata %+v\n%s", m, out)
	}
	if _, err := os.Stat(filepath.Join(m.Rootfs, "var/cache/demo/x")); err == nil {
		t.Errorf("a cache mount's writes were kept")
	}
	st, err := h.engine.Create(ctx, engine.Spec{
		ID: "stagedsb", TemplateID: "staged", RootfsPath: m.Rootfs, SnapshotImage: m.SnapshotDir, StartCmd: m.StartCmd,
		CPUCount: 1, MemoryMB: 512, DiskSizeMB: 1024, AccessToken: "tok", EnvVars: m.Env,
		DefaultUser: m.DefaultUser, DefaultWorkdir: m.DefaultWorkdir,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h.engine.Kill(ctx, "stagedsb")
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for path, want := range map[string]string{
		"/greeting.txt": "hi from a heredoc\n", "/script.txt": "written by a heredoc script\n",
		"/shell.txt": "bash-ran\n", "/index.html": "<h1>multi-stage</h1>\n",
	} {
		resp, err := c.Get("http://" + net.JoinHostPort(st.Address, "8000") + path)
		if err != nil {
			t.Fatalf("the CMD does not serve port 8000: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != want {
			t.Errorf("GET %s: %s %q, want %q", path, resp.Status, body, want)
		}
	}
}

// shIn runs a bash command in a sandbox through its daemon, as its default
// user, and returns its output and exit code.
func shIn(ctx context.Context, t *testing.T, addr, token, cmd string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	c := processconnect.NewProcessClient(&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}, "http://"+addr+":49983")
	req := connect.NewRequest(&process.StartRequest{Process: &process.ProcessConfig{Cmd: "/bin/bash", Args: []string{"-c", cmd}}})
	req.Header().Set("X-Access-Token", token)
	stream, err := c.Start(ctx, req)
	if err != nil {
		t.Fatalf("run %q: %v", cmd, err)
	}
	defer stream.Close()
	var out strings.Builder
	code := -1
	for stream.Receive() {
		ev := stream.Msg().GetEvent()
		if d := ev.GetData(); d != nil {
			out.Write(d.GetStdout())
			out.Write(d.GetStderr())
		}
		if end := ev.GetEnd(); end != nil {
			code = int(end.GetExitCode())
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("run %q: %v", cmd, err)
	}
	return strings.TrimSpace(out.String()), code
}

// TestSpecBuild builds E2B's step form as the e2b SDK sends it: COPY of
// uploaded files (owned by the current user), a USER step that makes the
// user with sudo, RUN as root on a step of its own, ENV, ARG and WORKDIR; a
// failing step is named in the error.
func TestSpecBuild(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	const team = "00000000-0000-0000-0000-00000000beef"
	hash := strings.Repeat("c3", 32)
	upload := makeTar(t, true, tarEntry{name: "app/", typ: '5', mode: 0o755},
		tarEntry{name: "app/main.sh", body: "echo from-upload\n", mode: 0o755})
	if err := h.builder.PutFile(ctx, team, hash, strings.NewReader(string(upload))); err != nil {
		t.Fatal(err)
	}
	if ok, err := h.builder.HasFile(team, hash); err != nil || !ok {
		t.Fatalf("uploaded file: %v %v", ok, err)
	}
	if ok, _ := h.builder.HasFile("00000000-0000-0000-0000-000000000000", hash); ok {
		t.Errorf("another scope sees the upload")
	}
	spec := &template.Spec{FromTemplate: "base", Steps: []template.SpecStep{
		{Type: "USER", Args: []string{"builder", "true"}},
		{Type: "WORKDIR", Args: []string{"/home/builder/work"}},
		{Type: "COPY", Args: []string{"app", "/home/builder/work/app", "", ""}, FilesHash: hash},
		{Type: "ENV", Args: []string{"APP_HOME", "/home/builder/work/app"}},
		{Type: "ENV", Args: []string{"PATH", "$APP_HOME:$PATH"}}, // values name the variables before the step
		{Type: "ARG", Args: []string{"BUILD_ONLY", "yes"}},
		{Type: "RUN", Args: []string{"id -un > /whoami-root && echo $BUILD_ONLY > /build-arg", "root"}},
		{Type: "RUN", Args: []string{"id -un > whoami && main.sh > out.txt && sudo -n true && echo sudo-ok > sudo.txt"}},
	}}
	var log syncBuffer
	res, err := h.builder.Build(ctx, template.BuildRequest{Name: "sdk", Spec: spec, FilesScope: team, CPUCount: 1, MemoryMB: 512}, &log)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, log.String())
	}
	m := res.Metadata
	if m.DefaultUser != "builder" || m.DefaultWorkdir != "/home/builder/work" || m.Env["APP_HOME"] != "/home/builder/work/app" ||
		!strings.HasPrefix(m.Env["PATH"], "/home/builder/work/app:") || m.Env["BUILD_ONLY"] != "" {
		t.Errorf("metadata %+v", m)
	}
	read := func(p string) string {
		data, err := os.ReadFile(filepath.Join(m.Rootfs, p))
		if err != nil {
			t.Errorf("read %s: %v", p, err)
		}
		return strings.TrimSpace(string(data))
	}
	for p, want := range map[string]string{
		"/whoami-root": "root", "/build-arg": "yes", "/home/builder/work/whoami": "builder",
		"/home/builder/work/out.txt": "from-upload", "/home/builder/work/sudo.txt": "sudo-ok",
	} {
		if got := read(p); got != want {
			t.Errorf("%s: %q, want %q", p, got, want)
		}
	}
	fi, err := os.Stat(filepath.Join(m.Rootfs, "home/builder/work/app/main.sh"))
	if err != nil || fi.Mode().Perm() != 0o755 || statUID(fi) == 0 {
		t.Errorf("the copied file: %v %v (uid %d), want 0755 and the builder's", fi, err, statUID(fi))
	}

	// A failing step: the error names it as E2B's reason does.
	spec.Steps = append(spec.Steps, template.SpecStep{Type: "RUN", Args: []string{"exit 3"}})
	_, err = h.builder.Build(ctx, template.BuildRequest{Name: "sdk", Spec: spec, FilesScope: team}, &log)
	var se *template.StepError
	if !asStepError(err, &se) || se.Step != fmt.Sprint(len(spec.Steps)) {
		t.Errorf("a failing step: %v, want a StepError of step %d", err, len(spec.Steps))
	}
}

// statUID is the owner of fi (0 when fi is nil).
func statUID(fi os.FileInfo) uint32 {
	if fi == nil {
		return 0
	}
	return fi.Sys().(*syscall.Stat_t).Uid
}

// asStepError is errors.As for a *template.StepError.
func asStepError(err error, se **template.StepError) bool { return errors.As(err, se) }
