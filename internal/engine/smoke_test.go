package engine_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"lelantos.dev/lelantos/internal/engine"
	"lelantos.dev/lelantos/internal/engine/enginetest"
	"lelantos.dev/lelantos/internal/gen/envd/process"
	"lelantos.dev/lelantos/internal/gen/envd/process/processconnect"
)

// run runs a shell command in the sandbox through its daemon and returns stdout.
func run(t *testing.T, st engine.Status, cmd string) string {
	t.Helper()
	c := processconnect.NewProcessClient(&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}, "http://"+st.Address+":49983")
	req := connect.NewRequest(&process.StartRequest{Process: &process.ProcessConfig{Cmd: "/bin/bash", Args: []string{"-l", "-c", cmd}}})
	req.Header().Set("X-Access-Token", st.Spec.AccessToken)
	stream, err := c.Start(context.Background(), req)
	if err != nil {
		t.Fatalf("run %q: %v", cmd, err)
	}
	var out strings.Builder
	for stream.Receive() {
		if d := stream.Msg().GetEvent().GetData(); d != nil {
			out.Write(d.GetStdout())
			out.Write(d.GetStderr())
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("run %q: %v", cmd, err)
	}
	return strings.TrimSpace(out.String())
}

func TestSmoke(t *testing.T) {
	node := enginetest.NewNode(t, "10.232.0.0/16")
	e := node.Engine(t)
	ctx := context.Background()
	st, err := e.Create(ctx, engine.Spec{ID: "smoke1", TemplateID: "base", RootfsPath: enginetest.BaseRootfs(t),
		CPUCount: 1, MemoryMB: 512, DiskSizeMB: 1024, AccessToken: "tok", EnvVars: map[string]string{"FOO": "bar"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := run(t, st, "echo $FOO; whoami"); got != "bar\nuser" {
		t.Fatalf("got %q", got)
	}
	run(t, st, "echo kept > ~/f; nohup bash -c 'i=0; while true; do i=$((i+1)); echo $i > /tmp/c; sleep 0.05; done' >/dev/null 2>&1 &")
	for i := 0; i < 2; i++ {
		before := run(t, st, "sleep 0.3; cat /tmp/c")
		if _, err := e.Pause(ctx, "smoke1"); err != nil {
			t.Fatal(err)
		}
		if st, err = e.Resume(ctx, "smoke1"); err != nil {
			t.Fatal(err)
		}
		after := run(t, st, "cat /tmp/c; cat ~/f")
		t.Logf("cycle %d: before %s after %q", i, before, after)
	}
	if err := e.Kill(ctx, "smoke1"); err != nil {
		t.Fatal(err)
	}
}
