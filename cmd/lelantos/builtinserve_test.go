package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// tinyBuiltin is a built-in template that builds in seconds, through the
// same steps as a real one: a file of the definition copied, a RUN step
// (runStep), an ENV, and a start command taken into the snapshot.
func tinyBuiltin(runStep string) *builtinDefs {
	return &builtinDefs{
		templates: []builtinTemplate{{name: "tiny-builtin", dir: "tiny", cpu: 1, memoryMB: 256, diskMB: 512,
			startCmd: "echo started > /tmp/started && exec sleep infinity", readyCmd: "test -f /tmp/started"}},
		fsys: fstest.MapFS{
			"tiny/Dockerfile": {Data: []byte("FROM base\nCOPY hello.txt /etc/lelantos-tiny/hello.txt\nRUN " + runStep +
				" && echo made-by-run > /etc/lelantos-tiny/run.txt\nENV TINY_MODE=cached\n")},
			"tiny/hello.txt": {Data: []byte("hello from the definition\n")},
		},
	}
}

// TestBuiltinTemplateFromCache: a server with a fresh data directory builds a
// built-in template and keeps its tree in the cache directory; a second one,
// with another fresh data directory on the same cache, imports that tree
// (hard links) without running a step, takes only the snapshot, and its
// sandboxes have the tree, the Dockerfile's ENV and the start command running.
func TestBuiltinTemplateFromCache(t *testing.T) {
	p := needServerParts(t, false)
	cache := t.TempDir()
	defs := tinyBuiltin("true")
	name := defs.templates[0].name

	first := startTestServer(t, p, 1, cache, defs)
	r1 := first.waitReady(t, name, 10*time.Minute)
	took1 := time.Since(first.started)
	if r1.attrs["from"] != fromBuild || r1.attrs["ran"] == "0" {
		t.Fatalf("the first server's template: %v, want built", r1.attrs)
	}
	if first.logs.count("built-in template: tree kept in the template cache") != 1 {
		t.Fatalf("the first server kept no tree in the cache\n%s", first.logs.text())
	}
	first.stop(t)

	second := startTestServer(t, p, 2, cache, defs)
	r2 := second.waitReady(t, name, 5*time.Minute)
	took2 := time.Since(second.started)
	t.Logf("fresh data directory to %s ready: %s the first time (built: %s), %s the second (imported: %s)",
		name, took1.Round(time.Millisecond), r1.attrs["took"], took2.Round(time.Millisecond), r2.attrs["took"])
	if r2.attrs["from"] != fromCache || r2.attrs["ran"] != "0" || r2.attrs["steps"] != "0" {
		t.Fatalf("the second server's template: %v, want imported from the cache", r2.attrs)
	}
	if n := second.logs.count("built-in template: Step "); n != 0 {
		t.Errorf("the second server ran %d build steps\n%s", n, second.logs.text())
	}
	cached, _ := filepath.Glob(filepath.Join(cache, "templates", name+"-*", "rootfs", "etc", "lelantos-tiny", "hello.txt"))
	if len(cached) != 1 {
		t.Fatalf("cache entries: %v", cached)
	}
	version := filepath.Join(second.data, "node", "templates", "versions", name, r2.attrs["build"], "rootfs", "etc", "lelantos-tiny", "hello.txt")
	if inode(t, version) != inode(t, cached[0]) {
		t.Errorf("the imported version's file is not a hard link to the cache's")
	}

	out := second.run(t, name, "cat /etc/lelantos-tiny/hello.txt /etc/lelantos-tiny/run.txt /tmp/started; echo mode=$TINY_MODE; pgrep -x sleep >/dev/null && echo start-command-running")
	for _, want := range []string{"hello from the definition", "made-by-run", "started", "mode=cached", "start-command-running"} {
		if !strings.Contains(out, want) {
			t.Errorf("a sandbox of the imported template lacks %q:\n%s", want, out)
		}
	}
}

// TestBuiltinTemplateBuiltOnce: two servers that start at once on one cache
// directory build the template once: the second waits for the first's build
// (the entry's lock) and imports its tree.
func TestBuiltinTemplateBuiltOnce(t *testing.T) {
	p := needServerParts(t, false)
	cache := t.TempDir()
	// A RUN step long enough for the second server to find the build running.
	defs := tinyBuiltin("sleep 15")
	name := defs.templates[0].name
	servers := []*testServer{startTestServer(t, p, 3, cache, defs), startTestServer(t, p, 4, cache, defs)}
	var froms []string
	builds, waits := 0, 0
	for _, s := range servers {
		r := s.waitReady(t, name, 10*time.Minute)
		froms = append(froms, r.attrs["from"])
		builds += s.logs.count("built-in template: building")
		waits += s.logs.count("built-in template: waiting for another server's build")
	}
	slices.Sort(froms)
	if !slices.Equal(froms, []string{fromBuild, fromCache}) || builds != 1 || waits != 1 {
		t.Errorf("versions from %v, %d builds, %d waits; want one built, one imported after waiting\n%s\n%s",
			froms, builds, waits, servers[0].logs.text(), servers[1].logs.text())
	}
}

// TestBuiltinTemplateRebuiltOverBadEntry: an entry the import refuses (its
// configuration names a user its tree lacks) makes the server build the
// template instead, and replace the entry with a good one that the next data
// directory imports.
func TestBuiltinTemplateRebuiltOverBadEntry(t *testing.T) {
	p := needServerParts(t, false)
	cache := t.TempDir()
	defs := tinyBuiltin("true")
	name := defs.templates[0].name

	first := startTestServer(t, p, 7, cache, defs)
	first.waitReady(t, name, 10*time.Minute)
	first.stop(t)
	entries, _ := filepath.Glob(filepath.Join(cache, "templates", name+"-*", "entry.json"))
	if len(entries) != 1 {
		t.Fatalf("cache entries: %v", entries)
	}
	data, err := os.ReadFile(entries[0])
	if err != nil {
		t.Fatal(err)
	}
	var e cacheEntry
	if err := json.Unmarshal(data, &e); err != nil {
		t.Fatal(err)
	}
	e.Config.User = "no-such-user"
	if data, err = json.Marshal(e); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(entries[0], data, 0o600); err != nil {
		t.Fatal(err)
	}

	second := startTestServer(t, p, 8, cache, defs)
	r2 := second.waitReady(t, name, 10*time.Minute)
	if r2.attrs["from"] != fromBuild || second.logs.count("built-in template: import from the template cache failed") != 1 ||
		second.logs.count("built-in template: tree kept in the template cache") != 1 {
		t.Fatalf("over a bad entry the template was %v\n%s", r2.attrs, second.logs.text())
	}
	second.stop(t)

	third := startTestServer(t, p, 9, cache, defs)
	r3 := third.waitReady(t, name, 5*time.Minute)
	if r3.attrs["from"] != fromCache {
		t.Fatalf("after the rebuild the template was %v\n%s", r3.attrs, third.logs.text())
	}
	if out := third.run(t, name, "cat /etc/lelantos-tiny/hello.txt"); !strings.Contains(out, "hello from the definition") {
		t.Errorf("a sandbox of the replaced entry's template:\n%s", out)
	}
}
