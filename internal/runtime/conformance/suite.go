package conformance

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/runtime"
)

// Options configures a run of the suite.
type Options struct {
	// NetOctet is the second octet of the 10.x.0.0/16 the suite's sandboxes are
	// addressed from; test binaries that may run at once need different ones.
	NetOctet int
	// HostKernel says the sandboxes run on the host's kernel (runc): the suite then
	// also checks the user namespace, seccomp filter, no-new-privileges and cgroup
	// namespace that confine them, and that no new user namespace can be made inside.
	HostKernel bool
	// Reopen, when set, returns a new Runtime over the same state, as a node
	// restart makes one: the suite then checks that it takes over running sandboxes.
	Reopen func(t *testing.T) runtime.Runtime
}

// Run runs the whole suite against rt. Tests of checkpointing expect an
// *runtime.UnsupportedError from a runtime whose Capabilities say it cannot.
func Run(t *testing.T, rt runtime.Runtime, opts Options) {
	h := &Harness{octet: opts.NetOctet}
	tests := []struct {
		name string
		fn   func(*testing.T, *Harness, runtime.Runtime)
	}{
		{"StartKill", testStartKill},
		{"KillUnknown", testKillUnknown},
		{"CanceledStart", testCanceledStart},
		{"ListAndStats", testListAndStats},
		{"Wait", testWait},
		{"MemoryTotal", testMemoryTotal},
		{"DiskLimit", testDiskLimit},
		{"FreezeThaw", testFreezeThaw},
		{"CPUWeight", testCPUWeight},
		{"CheckpointRestoreTwice", testCheckpointRestoreTwice},
		{"Fork", testFork},
		{"MemoryLimitKillsOnlyThatSandbox", testMemoryLimit},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, h, rt) })
	}
	confinement := []struct {
		name string
		fn   func(*testing.T, *Harness, runtime.Runtime, Options)
	}{
		{"Ownership", testOwnership},
		{"WritableRoot", testWritableRoot},
		{"Attacks", testAttacks},
		{"Confinement", testConfinement},
	}
	if opts.Reopen != nil {
		confinement = append(confinement, struct {
			name string
			fn   func(*testing.T, *Harness, runtime.Runtime, Options)
		}{"ReadoptAfterRestart", testReadopt})
	}
	for _, tc := range confinement {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, h, rt, opts) })
	}
}

// newID returns a sandbox id unique within the test binary's run.
func newID(t *testing.T, suffix string) string {
	name := strings.ToLower(strings.NewReplacer("/", "", "_", "").Replace(t.Name()))
	return fmt.Sprintf("c%d%s%s", time.Now().UnixNano()%1e9, name[len(name)-min(8, len(name)):], suffix)
}

func testStartKill(t *testing.T, h *Harness, rt runtime.Runtime) {
	ctx := context.Background()
	sb := h.start(t, rt, newID(t, ""))
	if got := sb.must(t, "GET", "/hostname"); got != sb.id {
		t.Errorf("hostname = %q, want %q", got, sb.id)
	}
	if err := rt.Kill(ctx, sb.id); err != nil {
		t.Fatalf("kill: %v", err)
	}
	if sb.answers() {
		t.Fatal("probe still answers after kill")
	}
	if err := rt.Kill(ctx, sb.id); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("second kill: got %v, want ErrNotFound", err)
	}
}

func testKillUnknown(t *testing.T, h *Harness, rt runtime.Runtime) {
	if err := rt.Kill(context.Background(), "nosuchsandbox"); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("kill unknown: got %v, want ErrNotFound", err)
	}
	if err := rt.Checkpoint(context.Background(), "nosuchsandbox", filepath.Join(t.TempDir(), "img")); err == nil {
		t.Fatal("checkpoint unknown: got nil error")
	}
}

func testListAndStats(t *testing.T, h *Harness, rt runtime.Runtime) {
	ctx := context.Background()
	sb := h.start(t, rt, newID(t, ""))
	infos, err := rt.List(ctx)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	found := false
	for _, i := range infos {
		if i.ID == sb.id {
			found = i.Status == runtime.StatusRunning && i.Pid > 0
		}
	}
	if !found {
		t.Fatalf("list %v lacks running %s", infos, sb.id)
	}
	sb.must(t, "POST", "/alloc?mb=32")
	sb.must(t, "POST", "/spin?for=300ms&threads=1")
	st, err := rt.Stats(ctx, sb.id)
	if err != nil {
		t.Fatalf("stats: %v", err)
	}
	if st.MemoryBytes < 32<<20 {
		t.Errorf("memory %d bytes, want >= 32 MiB after allocating it", st.MemoryBytes)
	}
	if st.CPUNanos < uint64(200*time.Millisecond) {
		t.Errorf("cpu %v, want >= 200ms after spinning 300ms", time.Duration(st.CPUNanos))
	}
}

func testWait(t *testing.T, h *Harness, rt runtime.Runtime) {
	sb := h.start(t, rt, newID(t, ""))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := rt.Wait(ctx, sb.id); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("wait returned early: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	sb.must(t, "POST", "/exit?code=3")
	if err := <-done; err != nil {
		t.Fatalf("wait: %v", err)
	}
}

func testMemoryTotal(t *testing.T, h *Harness, rt runtime.Runtime) {
	sb := h.start(t, rt, newID(t, ""))
	kb, err := strconv.Atoi(sb.must(t, "GET", "/memtotal"))
	if err != nil {
		t.Fatal(err)
	}
	if want := sb.cfg.MemoryMB * 1024; kb != want {
		t.Errorf("MemTotal = %d kB, want %d kB (the sandbox's memoryMB)", kb, want)
	}
}

func testDiskLimit(t *testing.T, h *Harness, rt runtime.Runtime) {
	sb := h.start(t, rt, newID(t, ""))
	got := sb.must(t, "POST", "/fill?path=/root/big")
	if !strings.Contains(got, "no space left on device") {
		t.Fatalf("filling past %d MB: got %q, want ENOSPC", sb.cfg.DiskSizeMB, got)
	}
}

func testFreezeThaw(t *testing.T, h *Harness, rt runtime.Runtime) {
	ctx := context.Background()
	sb := h.start(t, rt, newID(t, ""))
	if err := rt.Freeze(ctx, sb.id); err != nil {
		t.Fatalf("freeze: %v", err)
	}
	if sb.answers() {
		t.Fatal("a frozen sandbox answered")
	}
	if err := rt.Thaw(ctx, sb.id); err != nil {
		t.Fatalf("thaw: %v", err)
	}
	sb.waitReady(t)
}

// pauseResume checkpoints sb and restores it under the same id.
func pauseResume(t *testing.T, h *Harness, rt runtime.Runtime, sb *sandbox, n int) {
	t.Helper()
	ctx := context.Background()
	img := filepath.Join(sb.cfg.Dir, fmt.Sprintf("image-%d", n))
	if err := rt.Checkpoint(ctx, sb.id, img); err != nil {
		t.Fatalf("checkpoint %d: %v", n, err)
	}
	if sb.answers() {
		t.Fatalf("checkpoint %d: sandbox still answers", n)
	}
	h.prepareNet(sb.cfg)
	if err := rt.Restore(ctx, sb.id, sb.cfg, img); err != nil {
		t.Fatalf("restore %d: %v", n, err)
	}
	sb.waitReady(t)
}

func testCheckpointRestoreTwice(t *testing.T, h *Harness, rt runtime.Runtime) {
	sb := h.start(t, rt, newID(t, ""))
	if !rt.Capabilities().Checkpoint {
		err := rt.Checkpoint(context.Background(), sb.id, filepath.Join(sb.cfg.Dir, "img"))
		if !runtime.IsUnsupported(err) || !strings.Contains(err.Error(), rt.Class()) {
			t.Fatalf("checkpoint on %s: got %v, want an UnsupportedError naming the runtime", rt.Class(), err)
		}
		sb.must(t, "GET", "/count")
		return
	}
	sb.must(t, "POST", "/file?path=/root/kept&data=before-pause")
	time.Sleep(200 * time.Millisecond)
	before, _ := strconv.Atoi(sb.must(t, "GET", "/count"))
	for i := 1; i <= 2; i++ {
		pauseResume(t, h, rt, sb, i)
		now, _ := strconv.Atoi(sb.must(t, "GET", "/count"))
		if now < before {
			t.Fatalf("cycle %d: counter went from %d back to %d: memory was not kept", i, before, now)
		}
		if got := sb.must(t, "GET", "/file?path=/root/kept"); got != "before-pause" {
			t.Fatalf("cycle %d: file holds %q", i, got)
		}
		before = now
	}
}

func testFork(t *testing.T, h *Harness, rt runtime.Runtime) {
	ctx := context.Background()
	if !rt.Capabilities().Checkpoint {
		id := newID(t, "f")
		cfg, _ := h.config(t, rt, id)
		err := rt.Restore(ctx, id, cfg, t.TempDir())
		if !runtime.IsUnsupported(err) {
			t.Fatalf("fork on %s: got %v, want an UnsupportedError", rt.Class(), err)
		}
		return
	}
	src := h.start(t, rt, newID(t, "src"))
	src.must(t, "POST", "/file?path=/root/origin&data=parent")
	time.Sleep(200 * time.Millisecond)
	at, _ := strconv.Atoi(src.must(t, "GET", "/count"))
	img := filepath.Join(t.TempDir(), "image")
	if err := rt.Checkpoint(ctx, src.id, img); err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	for i := 0; i < 3; i++ {
		id := newID(t, fmt.Sprintf("f%d", i))
		cfg, addr := h.config(t, rt, id)
		if err := rt.Restore(ctx, id, cfg, img); err != nil {
			t.Fatalf("fork %d: %v", i, err)
		}
		t.Cleanup(func() { _ = rt.Kill(context.Background(), id) })
		fork := &sandbox{id: id, cfg: cfg, addr: addr}
		fork.waitReady(t)
		if n, _ := strconv.Atoi(fork.must(t, "GET", "/count")); n < at {
			t.Errorf("fork %d: counter %d < %d at the checkpoint", i, n, at)
		}
		if got := fork.must(t, "GET", "/file?path=/root/origin"); got != "parent" {
			t.Errorf("fork %d: file holds %q", i, got)
		}
		// Each fork writes its own layer.
		fork.must(t, "POST", fmt.Sprintf("/file?path=/root/origin&data=fork%d", i))
	}
}

func testMemoryLimit(t *testing.T, h *Harness, rt runtime.Runtime) {
	ctx := context.Background()
	hog := h.start(t, rt, newID(t, "hog"))
	neighbour := h.start(t, rt, newID(t, "nb"))
	done := make(chan runtime.Exit, 1)
	go func() {
		wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		exit, _ := rt.Wait(wctx, hog.id)
		done <- exit
	}()
	// Allocate well past the limit; the sandbox may die mid-request.
	go func() { _, _ = hog.call("POST", fmt.Sprintf("/alloc?mb=%d", hog.cfg.MemoryMB*3)) }()
	select {
	case exit := <-done:
		if !exit.OOMKilled {
			t.Errorf("hog ended with %+v, want OOMKilled", exit)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("a sandbox allocating 3x its memory is still running")
	}
	if got := neighbour.must(t, "GET", "/hostname"); got != neighbour.id {
		t.Errorf("neighbour answered %q", got)
	}
}
