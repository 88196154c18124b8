package template_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/engine"
	"lelantos.dev/lelantos/internal/template"
)

// TestStartCommandSnapshot: a template with a start command is snapshotted once its
// ready command passes, and a sandbox restored from the snapshot serves at once.
func TestStartCommandSnapshot(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	var log syncBuffer
	start := time.Now()
	res, err := h.builder.Build(ctx, template.BuildRequest{
		Name:       "web",
		Dockerfile: "FROM base\nWORKDIR /srv\nRUN echo hello-from-the-snapshot > index.html\nENV SERVED_BY=template\n",
		StartCmd:   "python3 -m http.server 8000",
		ReadyCmd:   "curl -s localhost:8000",
		CPUCount:   1, MemoryMB: 512, DiskSizeMB: 1024,
	}, &log)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, log.String())
	}
	t.Logf("build with snapshot: %s", time.Since(start).Round(time.Millisecond))
	t.Logf("log:\n%s", log.String())
	m := res.Metadata
	if m.SnapshotDir == "" || m.StartCmd != "python3 -m http.server 8000" || res.Template.StartCmd != m.StartCmd {
		t.Fatalf("metadata %+v", m)
	}
	if _, err := os.Stat(filepath.Join(m.SnapshotDir, "checkpoint.img")); err != nil {
		t.Fatalf("no snapshot image: %v", err)
	}
	if !strings.Contains(log.String(), "snapshot taken") {
		t.Errorf("log does not report the snapshot:\n%s", log.String())
	}

	// What the control plane does: the template's metadata into a Spec.
	start = time.Now()
	st, err := h.engine.Create(ctx, engine.Spec{
		ID: "websb1", TemplateID: "web", RootfsPath: m.Rootfs, SnapshotImage: m.SnapshotDir, StartCmd: m.StartCmd,
		CPUCount: 1, MemoryMB: 512, DiskSizeMB: 1024, AccessToken: "tok", EnvVars: m.Env,
		DefaultUser: m.DefaultUser, DefaultWorkdir: m.DefaultWorkdir,
	})
	if err != nil {
		t.Fatal(err)
	}
	created := time.Since(start)
	defer h.engine.Kill(ctx, "websb1")
	// One try, no retries: the server must be there already.
	c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + net.JoinHostPort(st.Address, "8000") + "/index.html")
	if err != nil {
		t.Fatalf("the restored sandbox does not serve on port 8000 at once: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	t.Logf("sandbox from snapshot: created in %s, answered %s after", created.Round(time.Millisecond), (time.Since(start) - created).Round(time.Millisecond))
	if resp.StatusCode != http.StatusOK || string(body) != "hello-from-the-snapshot\n" {
		t.Fatalf("GET /index.html: %s %q", resp.Status, body)
	}
}
