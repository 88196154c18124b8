package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"lelantos.dev/lelantos/internal/engine/enginetest"
	"lelantos.dev/lelantos/internal/runtime"
	"lelantos.dev/lelantos/internal/runtime/cgroups"
	"lelantos.dev/lelantos/internal/runtime/oci"
)

// baselineCgroup is the cgroup parent of the containers started by hand here.
const baselineCgroup = "/lelantos-bench"

// hand starts containers of the base template by hand, with runsc or runc, in
// directories it removes when the benchmark ends.
type hand struct {
	dir    string // bundles and sandbox directories
	state  string // runsc's or runc's --root
	rootfs string
	runsc  string
}

func newHand(b *testing.B) *hand {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("needs root to start containers")
	}
	dir := b.TempDir()
	h := &hand{dir: dir, state: filepath.Join(dir, "state"), rootfs: enginetest.BaseRootfs(b),
		runsc: filepath.Join(enginetest.CacheDir(), "bin", "runsc")}
	b.Cleanup(func() {
		_ = unix.Unmount(filepath.Join(h.state, "null-netns"), unix.MNT_DETACH)
		_ = cgroups.Detect("").Remove(baselineCgroup)
	})
	return h
}

// bundle writes the OCI bundle of container id running args: the spec the runtimes
// give a sandbox (same mounts, namespaces and limits: 2 CPUs, 512 MB) without a
// network namespace path or the daemon's mount. For runc the root is the template
// itself, read-only, and the container gets a new, empty network namespace, as
// runsc --network=none gives it one.
func (h *hand) bundle(b *testing.B, id string, forRunc bool, args ...string) (bundle, sandboxDir string) {
	b.Helper()
	sandboxDir = filepath.Join(h.dir, id)
	if err := os.MkdirAll(sandboxDir, 0o700); err != nil {
		b.Fatal(err)
	}
	cfg := runtime.Config{
		RootfsPath: h.rootfs, Dir: sandboxDir, Args: args, Hostname: "lelantos",
		Env:      []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"},
		CPUCount: 2, MemoryMB: 512, DiskSizeMB: 2048,
	}
	s := oci.Spec(id, cfg, h.rootfs)
	s.Linux.CgroupsPath = baselineCgroup + "/" + id
	if forRunc {
		s.Root.Readonly = true
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace})
	}
	bundle = filepath.Join(sandboxDir, "bundle")
	if err := oci.WriteBundle(bundle, s); err != nil {
		b.Fatal(err)
	}
	return bundle, sandboxDir
}

// runscFlags are the gVisor runtime's global flags for a sandbox without network:
// systrap, and the root under an overlay whose upper layer is a file in sandboxDir.
func (h *hand) runscFlags(sandboxDir string) []string {
	return []string{"--root=" + h.state, "--platform=systrap", "--network=none", "--cpu-num-from-quota",
		"--overlay2=root:dir=" + sandboxDir + ",size=2048m"}
}

// timed runs a command to its end and returns how long it took from exec to exit.
func timed(b *testing.B, name string, args ...string) time.Duration {
	b.Helper()
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	t0 := time.Now()
	err := cmd.Run()
	d := time.Since(t0)
	if err != nil {
		b.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out.String())
	}
	return d
}

// quiet runs a cleanup command, ignoring its failure.
func quiet(name string, args ...string) { _ = exec.Command(name, args...).Run() }

// BenchmarkBaselineRunscTrue: `runsc run` of /bin/true on the base template, from
// exec to exit, on the same platform and overlay as the gVisor runtime but with
// --network=none. Reports p50 and p99.
func BenchmarkBaselineRunscTrue(b *testing.B) {
	h := newHand(b)
	var d []time.Duration
	i := 0
	for b.Loop() {
		b.StopTimer()
		id := fmt.Sprintf("rstrue%04d", i)
		i++
		bundle, sdir := h.bundle(b, id, false, "/bin/true")
		b.StartTimer()
		d = append(d, timed(b, h.runsc, append(h.runscFlags(sdir), "run", "--bundle", bundle, id)...))
		b.StopTimer()
		quiet(h.runsc, "--root="+h.state, "delete", "--force", id)
		b.StartTimer()
	}
	reportDist(b, "run", d)
}

// BenchmarkBaselineRuncTrue: `runc run` of /bin/true with the base template as a
// read-only root and a new, empty network namespace, from exec to exit. Reports p50
// and p99.
func BenchmarkBaselineRuncTrue(b *testing.B) {
	h := newHand(b)
	var d []time.Duration
	i := 0
	for b.Loop() {
		b.StopTimer()
		id := fmt.Sprintf("rctrue%04d", i)
		i++
		bundle, _ := h.bundle(b, id, true, "/bin/true")
		b.StartTimer()
		d = append(d, timed(b, "runc", "--root", h.state, "run", "--bundle", bundle, id))
		b.StopTimer()
		quiet("runc", "--root", h.state, "delete", "--force", id)
		b.StartTimer()
	}
	reportDist(b, "run", d)
}

// BenchmarkBaselineForkExecTrue: a local fork and exec of /bin/true from Go.
func BenchmarkBaselineForkExecTrue(b *testing.B) {
	var d []time.Duration
	for b.Loop() {
		d = append(d, timed(b, "/bin/true"))
	}
	b.ReportMetric(float64(percentile(d, 50).Microseconds()), "p50-µs")
}

// BenchmarkBaselineRunscCheckpointRestore200MB: python3 holding 200 MiB of touched
// memory in a container started by hand with runsc (as BenchmarkBaselineRunscTrue),
// checkpointed with `runsc checkpoint` and brought back with `runsc restore
// --detach`; one iteration is one checkpoint and one restore, each timed from exec
// to exit. The checkpoint is also timed until the sandbox's host process exits (seen
// through a pidfd) and until runsc reports the container stopped, which the gVisor
// runtime waits for: runsc says "running" until the exited process is reaped, and
// that is up to the host's init. This is runsc's own floor under Engine.Pause and
// Engine.Resume. Each iteration is two cycles: one restore as runsc does it by
// default, and one with --background (memory pages load after runsc returns, as
// the gVisor runtime restores). Reports checkpoint and both restores' p50 and the
// image's size on disk.
func BenchmarkBaselineRunscCheckpointRestore200MB(b *testing.B) {
	h := newHand(b)
	id := "rsckpt"
	bundle, sdir := h.bundle(b, id, false, "/usr/bin/python3", "-c", holdPython(`print("ready", flush=True)`))
	flags := h.runscFlags(sdir)
	consolePath := filepath.Join(sdir, "console")
	console, err := os.Create(consolePath)
	if err != nil {
		b.Fatal(err)
	}
	defer console.Close()
	b.Cleanup(func() {
		quiet(h.runsc, "--root="+h.state, "kill", "--all", id, "KILL")
		quiet(h.runsc, "--root="+h.state, "delete", "--force", id)
	})
	start := exec.Command(h.runsc, append(flags, "run", "--detach", "--bundle", bundle, id)...)
	start.Stdout, start.Stderr = console, console
	if err := start.Run(); err != nil {
		b.Fatalf("runsc run: %v: %s", err, runtime.Tail(consolePath, 1024))
	}
	waitConsole(b, consolePath, "ready", 60*time.Second)
	var ckpts, exits, stops, restores, backgrounds []time.Duration
	var imageMB float64
	k := 0
	// cycle checkpoints the container and restores it, with --background when
	// background is set, and records the times.
	cycle := func(background bool) {
		img := filepath.Join(sdir, fmt.Sprintf("image%d", k))
		k++
		b.StopTimer()
		exited := watchExit(b, h, id)
		b.StartTimer()
		t0 := time.Now()
		ckpts = append(ckpts, timed(b, h.runsc, "--root="+h.state, "checkpoint", "--image-path", img, id))
		b.StopTimer()
		select {
		case at := <-exited:
			exits = append(exits, at.Sub(t0))
		case <-time.After(30 * time.Second):
			b.Fatalf("container %s still running 30s after its checkpoint", id)
		}
		waitStopped(b, h, id)
		stops = append(stops, time.Since(t0))
		timed(b, h.runsc, "--root="+h.state, "delete", id)
		imageMB = duMB(b, img)
		if k > 1 { // the image the container ran from until now
			_ = os.RemoveAll(filepath.Join(sdir, fmt.Sprintf("image%d", k-2)))
		}
		b.StartTimer()
		args := append(slices.Clone(flags), "restore", "--detach", "--image-path", img, "--bundle", bundle)
		if background {
			args = append(args, "--background")
		}
		restore := exec.Command(h.runsc, append(args, id)...)
		restore.Stdout, restore.Stderr = console, console
		t0 = time.Now()
		if err := restore.Run(); err != nil {
			b.Fatalf("runsc restore: %v: %s", err, runtime.Tail(consolePath, 1024))
		}
		if background {
			backgrounds = append(backgrounds, time.Since(t0))
		} else {
			restores = append(restores, time.Since(t0))
		}
		b.StopTimer()
		if st, _ := runscState(b, h, id); st.Status != "running" {
			b.Fatalf("restored container is %q", st.Status)
		}
		b.StartTimer()
	}
	for b.Loop() {
		cycle(false)
		cycle(true)
	}
	b.ReportMetric(ms(percentile(ckpts, 50)), "checkpoint-p50-ms")
	b.ReportMetric(ms(percentile(exits, 50)), "checkpoint-exited-p50-ms")
	b.ReportMetric(ms(percentile(stops, 50)), "checkpoint-stopped-p50-ms")
	b.ReportMetric(ms(percentile(restores, 50)), "restore-p50-ms")
	b.ReportMetric(ms(percentile(backgrounds, 50)), "restore-background-p50-ms")
	b.ReportMetric(imageMB, "image-MB")
}

// waitConsole waits until the file at path contains want.
func waitConsole(b *testing.B, path, want string, timeout time.Duration) {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if data, _ := os.ReadFile(path); bytes.Contains(data, []byte(want)) {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%q not in %s after %v: %s", want, path, timeout, runtime.Tail(path, 1024))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// containerState is the part of `runsc state` read here.
type containerState struct {
	Status string `json:"status"`
	Pid    int    `json:"pid"`
}

// runscState is what runsc reports of id; a zero state means runsc holds no such
// container, and ok is false when runsc could not say (e.g. while it is busy).
func runscState(b *testing.B, h *hand, id string) (st containerState, ok bool) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, h.runsc, "--root="+h.state, "state", id)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := stderr.String()
		return st, strings.Contains(msg, "does not exist") || strings.Contains(msg, "not found")
	}
	if err := json.Unmarshal(out, &st); err != nil {
		b.Fatalf("runsc state %s: %v: %s", id, err, out)
	}
	return st, true
}

// watchExit watches the host process of container id and sends the time it exits.
func watchExit(b *testing.B, h *hand, id string) <-chan time.Time {
	b.Helper()
	st, _ := runscState(b, h, id)
	if st.Pid <= 0 {
		b.Fatalf("container %s has no pid: %+v", id, st)
	}
	fd, err := unix.PidfdOpen(st.Pid, 0)
	if err != nil {
		b.Fatalf("pidfd of container %s (pid %d): %v", id, st.Pid, err)
	}
	exited := make(chan time.Time, 1)
	go func() {
		defer unix.Close(fd)
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			if n, err := unix.Poll(fds, -1); n > 0 || (err != nil && err != unix.EINTR) {
				exited <- time.Now()
				return
			}
		}
	}()
	return exited
}

// waitStopped waits until runsc reports id stopped (or gone) after a checkpoint.
func waitStopped(b *testing.B, h *hand, id string) {
	b.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if st, ok := runscState(b, h, id); ok && (st.Status == "stopped" || st.Status == "") {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("container %s not stopped 30s after its checkpoint", id)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
