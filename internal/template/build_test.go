package template_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/store"
	"lelantos.dev/lelantos/internal/template"
)

const appDockerfile = `# syntax=docker/dockerfile:1
FROM base
ENV APP_HOME=/opt/app \
    APP_MODE="test mode"
# apt reaches the Debian mirror from the build's sandbox
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends jq >/dev/null \
 && rm -rf /var/lib/apt/lists/* && echo "installed $(jq --version)"
ARG GREETING=hello
WORKDIR $APP_HOME
COPY --chown=user:user greet.sh bin/
COPY data/ ./data/
ENV PATH=$APP_HOME/bin:$PATH
RUN greet.sh > /opt/app/greeting.txt && echo "$GREETING from RUN" && ls -l bin
USER user
WORKDIR /home/user/work
RUN touch made-by-user && id -un > whoami.txt
`

// TestBuild builds a template from base with apt, COPY, ENV, WORKDIR and USER, checks
// the tree and the metadata, then rebuilds it from the cache.
func TestBuild(t *testing.T) {
	// Versions a create was handed (Lookup) are kept a moment only.
	h := newHarnessWith(t, func(o *template.BuilderOptions) { o.LeaseTime = time.Nanosecond })
	ctx := context.Background()
	bctx := writeContext(t, map[string]string{
		"greet.sh*":      "#!/bin/sh\necho \"greetings from $APP_MODE\"\n",
		"data/a.txt":     "a\n",
		"data/sub/b.txt": "b\n",
		"data/skip.log":  "ignored\n",
		".dockerignore":  "data/*.log\n",
	})
	req := template.BuildRequest{Name: "app", Dockerfile: appDockerfile, ContextDir: bctx, CPUCount: 1, MemoryMB: 512, DiskSizeMB: 1024}
	var log syncBuffer
	start := time.Now()
	res, err := h.builder.Build(ctx, req, &log)
	cold := time.Since(start)
	if err != nil {
		t.Fatalf("build: %v\nlog:\n%s", err, log.String())
	}
	t.Logf("cold build: %s (%d steps, %d run)", cold.Round(time.Millisecond), res.Steps, res.Ran)
	out := log.String()
	for _, want := range []string{"Step 1/12 : FROM base", "installed jq-1.6", "hello from RUN", "greet.sh"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	root := res.Metadata.Rootfs
	if res.Template.RootfsPath != root || res.Template.Status != store.TemplateReady || res.Template.EnvdVersion != "0.6.4" {
		t.Errorf("store record %+v", res.Template)
	}
	checkFile(t, root, "usr/bin/jq", 0o755, 0, 0)
	checkFile(t, root, "opt/app/bin/greet.sh", 0o755, 1000, 1000)
	checkFile(t, root, "opt/app/data/a.txt", 0o644, 0, 0)
	checkFile(t, root, "opt/app/data/sub/b.txt", 0o644, 0, 0)
	checkFile(t, root, "home/user/work/made-by-user", 0o644, 1000, 1000)
	if _, err := os.Lstat(filepath.Join(root, "opt/app/data/skip.log")); err == nil {
		t.Errorf(".dockerignore'd file was copied")
	}
	if b, _ := os.ReadFile(filepath.Join(root, "opt/app/greeting.txt")); string(b) != "greetings from test mode\n" {
		t.Errorf("greeting.txt = %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "home/user/work/whoami.txt")); string(b) != "user\n" {
		t.Errorf("whoami.txt = %q", b)
	}
	if ents, _ := filepath.Glob(filepath.Join(root, ".lelantos-exit-*")); len(ents) > 0 {
		t.Errorf("exit files left in the tree: %v", ents)
	}
	m, err := h.builder.Lookup(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	if m.DefaultUser != "user" || m.DefaultWorkdir != "/home/user/work" || m.Env["APP_HOME"] != "/opt/app" ||
		m.Env["APP_MODE"] != "test mode" || m.Rootfs != root || m.BuildID != res.BuildID ||
		m.Env["PATH"] != "/opt/app/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" {
		t.Errorf("metadata %+v", m)
	}
	if _, ok := m.Env["GREETING"]; ok {
		t.Errorf("ARG leaked into the template's env")
	}

	// The rebuild reuses every step: no RUN runs, and it is a new version.
	var log2 syncBuffer
	start = time.Now()
	res2, err := h.builder.Build(ctx, req, &log2)
	warm := time.Since(start)
	if err != nil {
		t.Fatalf("rebuild: %v\n%s", err, log2.String())
	}
	t.Logf("cached rebuild: %s (%d cached, %d run)", warm.Round(time.Millisecond), res2.CacheHits, res2.Ran)
	if res2.Ran != 0 || res2.CacheHits != 7 || strings.Contains(log2.String(), "installed jq") {
		t.Errorf("rebuild ran steps: %+v\n%s", res2, log2.String())
	}
	if n := strings.Count(log2.String(), "using cache"); n != 7 {
		t.Errorf("rebuild log reports %d cache hits:\n%s", n, log2.String())
	}
	if res2.BuildID == res.BuildID || res2.Metadata.Rootfs == root {
		t.Errorf("rebuild did not make a new version: %s %s", res2.BuildID, res2.Metadata.Rootfs)
	}
	if _, err := os.Stat(filepath.Join(root, "usr/bin/jq")); err != nil {
		t.Errorf("old version's tree is gone before GC: %v", err)
	}
	// A changed build argument invalidates from its ARG on.
	req.BuildArgs = map[string]string{"GREETING": "bonjour"}
	var log3 syncBuffer
	res3, err := h.builder.Build(ctx, req, &log3)
	if err != nil {
		t.Fatalf("build with argument: %v\n%s", err, log3.String())
	}
	if !strings.Contains(log3.String(), "bonjour from RUN") || res3.CacheHits != 1 || res3.Ran != 6 {
		t.Errorf("a changed build argument should rerun the steps after its ARG only: %+v\n%s", res3, log3.String())
	}

	// GC keeps versions in use and the current one, removes the rest.
	inUse := func(rootfs string) (bool, error) { return rootfs == res2.Metadata.Rootfs, nil }
	removed, err := h.builder.GC(ctx, inUse)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || !strings.HasSuffix(removed[0], res.BuildID) {
		t.Errorf("GC removed %v", removed)
	}
	if _, err := os.Stat(res2.Metadata.Rootfs); err != nil {
		t.Errorf("GC removed a tree in use: %v", err)
	}
	// Delete refuses while sandboxes use the template.
	err = h.builder.Delete(ctx, "app", func(string) (bool, error) { return true, nil })
	if !errors.Is(err, template.ErrInUse) {
		t.Fatalf("delete in use: %v", err)
	}
	if err := h.builder.Delete(ctx, "app", func(string) (bool, error) { return false, nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := h.builder.Lookup(ctx, "app"); !errors.Is(err, template.ErrNotFound) {
		t.Errorf("lookup after delete: %v", err)
	}
	// The deleted template's files go with the next collection.
	if _, err := h.builder.GC(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(res3.Metadata.Rootfs); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("delete and GC left the tree: %v", err)
	}
}

// checkFile checks a file's mode and owner in a tree.
func checkFile(t *testing.T, root, rel string, mode os.FileMode, uid, gid uint32) {
	t.Helper()
	fi, err := os.Stat(filepath.Join(root, rel))
	if err != nil {
		t.Errorf("%s: %v", rel, err)
		return
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != mode || st.Uid != uid || st.Gid != gid {
		t.Errorf("%s: mode %o owner %d:%d, want %o %d:%d", rel, fi.Mode().Perm(), st.Uid, st.Gid, mode, uid, gid)
	}
}
