package engine_test

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"lelantos.dev/lelantos/internal/engine"
	"lelantos.dev/lelantos/internal/engine/enginetest"
	"lelantos.dev/lelantos/internal/volume"
)

// volumeNode is a test node whose engines keep volumes in a Local backend of their
// own, with one volume of sizeMB made. The backend is made first, so that it is
// closed (its images unmounted) after the node's sandboxes are gone.
func volumeNode(t *testing.T, subnet string, sizeMB int) (*enginetest.Node, *volume.Local, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: loop devices, mounts and sandboxes")
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Skip("needs loop devices: /dev/loop-control is missing")
	}
	local, err := volume.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := local.Close(); err != nil {
			t.Errorf("close volumes: %v", err)
		}
	})
	const id = "5e0c9a52-8a5b-4c6e-9d3f-2b7a6c1d0e9f"
	if err := local.Create(context.Background(), id, sizeMB); err != nil {
		t.Fatal(err)
	}
	return enginetest.NewNode(t, subnet), local, id
}

// volumeEngine starts an engine on node whose volumes are local's.
func volumeEngine(t *testing.T, node *enginetest.Node, local *volume.Local) *engine.Engine {
	t.Helper()
	return node.EngineWith(t, func(o *engine.Options) { o.Volumes = local })
}

// hostRead reads a file of volume id host-side, as the content API does.
func hostRead(t *testing.T, local *volume.Local, id, name string) string {
	t.Helper()
	tr, err := local.Open(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	f, _, err := tr.Open(name)
	if err != nil {
		t.Fatalf("read %s host-side: %v", name, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestVolumeGVisor: gVisor sandboxes mount one volume read-write through the gofer:
// each sees the other's writes and the host-side content, writes past the volume's
// size get ENOSPC, and the mount and its files survive a pause and resume.
func TestVolumeGVisor(t *testing.T) {
	node, local, vol := volumeNode(t, "10.232.177.0/24", 48)
	e := volumeEngine(t, node, local)
	ctx := context.Background()

	sa := newSpec(t, "volboxa")
	sa.VolumeMounts = []engine.VolumeMount{{VolumeID: vol, Name: "data", Path: "/mnt/data"}}
	a := create(t, e, sa)
	sb := newSpec(t, "volboxb")
	sb.VolumeMounts = []engine.VolumeMount{{VolumeID: vol, Name: "data", Path: "/data"}}
	b := create(t, e, sb)

	must(t, a, "echo from-a > /mnt/data/a.txt && mkdir -p /mnt/data/dir && chown 1000:1000 /mnt/data/dir")
	if got := must(t, b, "cat /data/a.txt; stat -c %u:%g /data/dir"); got != "from-a\n1000:1000" {
		t.Errorf("b reads %q", got)
	}
	must(t, b, "echo from-b > /data/b.txt")
	if got := must(t, a, "cat /mnt/data/b.txt"); got != "from-b" {
		t.Errorf("a reads b's write as %q", got)
	}
	if got := hostRead(t, local, vol, "/a.txt"); got != "from-a\n" {
		t.Errorf("host-side read: %q", got)
	}
	// Links a sandbox plants lead nowhere outside the volume host-side.
	must(t, a, "ln -s /etc/shadow /mnt/data/shadow && ln -s ../../../../../../../../etc /mnt/data/etc && mkfifo /mnt/data/fifo")
	tr, err := local.Open(ctx, vol)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"/shadow", "/etc/shadow", "/etc/passwd", "/fifo"} {
		if f, _, err := tr.Open(name); err == nil {
			f.Close()
			t.Errorf("host-side read of %s, planted by the sandbox, succeeded", name)
		} else if !errors.Is(err, volume.ErrNotFound) && !errors.Is(err, volume.ErrInvalid) {
			t.Errorf("host-side read of %s: %v, want ErrNotFound (or ErrInvalid for a loop)", name, err)
		}
	}
	tr.Close()
	// The default user may write at the volume's top, which it owns.
	must(t, a, "su user -c 'echo mine > /mnt/data/user.txt' && stat -c %u /mnt/data/user.txt")

	// A write past the volume's size fails inside with ENOSPC; the volume still works.
	r, err := sh(ctx, a.Address, a.Spec.AccessToken, "dd if=/dev/zero of=/mnt/data/big bs=1M count=96 2>&1; echo rc=$?")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.Out, "No space left on device") || strings.HasSuffix(r.Out, "rc=0") {
		t.Errorf("writing 96 MiB into a 48 MiB volume: %q, want ENOSPC", r.Out)
	}
	must(t, a, "rm /mnt/data/big && echo fits > /mnt/data/small")
	// The sandbox's own disk is not the volume's: filling one leaves the other.
	must(t, a, "df -m /mnt/data | tail -1")

	// Pause and resume with the mount: files written before, and host-side while
	// paused, are there after; the mount is writable again.
	must(t, a, "echo before-pause > /mnt/data/p.txt")
	if _, err := e.Pause(ctx, sa.ID); err != nil {
		t.Fatalf("pause with a volume: %v", err)
	}
	tr, err = local.Open(ctx, vol)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Write("/while-paused.txt", strings.NewReader("host"), volume.Attrs{}, false); err != nil {
		t.Fatal(err)
	}
	tr.Close()
	a, err = e.Resume(ctx, sa.ID)
	if err != nil {
		t.Fatalf("resume with a volume: %v", err)
	}
	if got := must(t, a, "cat /mnt/data/p.txt /mnt/data/while-paused.txt; echo after > /mnt/data/after.txt"); got != "before-pause\nhost" {
		t.Errorf("after resume: %q", got)
	}
	if got := hostRead(t, local, vol, "/after.txt"); got != "after\n" {
		t.Errorf("a write after resume, host-side: %q", got)
	}

	// The volume outlives its sandboxes.
	killed(t, e, sa.ID)
	killed(t, e, sb.ID)
	if got := hostRead(t, local, vol, "/b.txt"); got != "from-b\n" {
		t.Errorf("after both are killed: %q", got)
	}
}

// TestVolumeFork: a fork of a sandbox mounts the source's volumes, as its image does,
// whether the source runs (and is checkpointed in place, keeping its mount) or is
// paused.
func TestVolumeFork(t *testing.T) {
	node, local, vol := volumeNode(t, "10.232.179.0/24", 32)
	e := volumeEngine(t, node, local)
	ctx := context.Background()
	s := newSpec(t, "volforksrc")
	s.VolumeMounts = []engine.VolumeMount{{VolumeID: vol, Name: "data", Path: "/mnt/data"}}
	src := create(t, e, s)
	must(t, src, "echo from-source > /mnt/data/source.txt")
	forkOf := func(id string) engine.Status {
		t.Helper()
		forks, err := e.Fork(ctx, s.ID, []engine.Spec{{ID: id, AccessToken: "tok-" + id}})
		if err != nil {
			t.Fatalf("fork a sandbox with a volume: %v", err)
		}
		t.Cleanup(func() { killed(t, e, id) })
		child := forks[0]
		if len(child.Spec.VolumeMounts) != 1 || child.Spec.VolumeMounts[0].VolumeID != vol {
			t.Errorf("the fork's mounts: %+v", child.Spec.VolumeMounts)
		}
		return child
	}
	running := forkOf("volforkrun")
	if got := must(t, running, "cat /mnt/data/source.txt; echo from-fork > /mnt/data/fork.txt"); got != "from-source" {
		t.Errorf("the fork of a running sandbox reads %q", got)
	}
	src, _ = e.Get(s.ID)
	if got := must(t, src, "cat /mnt/data/fork.txt; echo again > /mnt/data/source-after.txt"); got != "from-fork" {
		t.Errorf("the source, checkpointed in place, reads %q", got)
	}
	if got := hostRead(t, local, vol, "/source-after.txt"); got != "again\n" {
		t.Errorf("the source's write after the fork, host-side: %q", got)
	}
	if _, err := e.Pause(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	paused := forkOf("volforkpaused")
	must(t, paused, "echo from-paused-fork > /mnt/data/paused-fork.txt")
	if got := hostRead(t, local, vol, "/paused-fork.txt"); got != "from-paused-fork\n" {
		t.Errorf("the fork's write, host-side: %q", got)
	}
}

// TestVolumeRestart: a paused sandbox with a volume resumes after the node restarts
// and its volumes were unmounted from the host meanwhile (a server stop).
func TestVolumeRestart(t *testing.T) {
	node, local, vol := volumeNode(t, "10.232.178.0/24", 32)
	e := volumeEngine(t, node, local)
	ctx := context.Background()
	s := newSpec(t, "volrestart")
	s.VolumeMounts = []engine.VolumeMount{{VolumeID: vol, Name: "data", Path: "/v"}}
	create(t, e, s)
	st, _ := e.Get(s.ID)
	must(t, st, "echo one > /v/one")
	if _, err := e.Pause(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	e.Close()
	if err := local.Close(); err != nil {
		t.Fatal(err)
	}
	e = volumeEngine(t, node, local)
	st, err := e.Resume(ctx, s.ID)
	if err != nil {
		t.Fatalf("resume after a restart: %v", err)
	}
	if got := must(t, st, "cat /v/one; echo two > /v/two"); got != "one" {
		t.Errorf("after the restart: %q", got)
	}
	if got := hostRead(t, local, vol, "/two"); got != "two\n" {
		t.Errorf("host-side: %q", got)
	}
	killed(t, e, s.ID)
}

// TestVolumeRunc: runc sandboxes, each in an id range of its own, see a volume's
// files with the same owners as gVisor sandboxes and the content API: what one
// sandbox's user writes is owned by 1000 on disk and in the other.
func TestVolumeRunc(t *testing.T) {
	node, local, vol := volumeNode(t, "10.232.180.0/24", 32)
	e := volumeEngine(t, node, local)
	ctx := context.Background()
	before := node.HostState(t, "volrunc")
	s1 := newSpec(t, "volrunca")
	s1.RuntimeClass = "runc"
	s1.VolumeMounts = []engine.VolumeMount{{VolumeID: vol, Name: "data", Path: "/mnt/data"}}
	a := create(t, e, s1)
	s2 := newSpec(t, "volruncb")
	s2.RuntimeClass = "runc"
	s2.VolumeMounts = []engine.VolumeMount{{VolumeID: vol, Name: "data", Path: "/mnt/data"}}
	b := create(t, e, s2)

	if got := must(t, a, "stat -c %u:%g /mnt/data; echo root > /mnt/data/r; su user -c 'echo user > /mnt/data/u'; stat -c %u /mnt/data/r /mnt/data/u"); got != "1000:1000\n0\n1000" {
		t.Errorf("owners inside a: %q", got)
	}
	tr, err := local.Open(ctx, vol)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]uint32{"/r": 0, "/u": 1000} {
		if e, err := tr.Stat(name); err != nil || e.UID != want {
			t.Errorf("%s on disk: %+v, %v, want uid %d", name, e, err, want)
		}
	}
	tr.Close()
	if got := must(t, b, "stat -c %u /mnt/data/u; su user -c 'echo more >> /mnt/data/u' && cat /mnt/data/u"); got != "1000\nuser\nmore" {
		t.Errorf("b appends to a's user's file: %q", got)
	}
	r, err := sh(ctx, a.Address, a.Spec.AccessToken, "dd if=/dev/zero of=/mnt/data/big bs=1M count=64 2>&1; echo rc=$?")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.Out, "No space left on device") {
		t.Errorf("writing 64 MiB into a 32 MiB volume from runc: %q", r.Out)
	}
	killed(t, e, s1.ID)
	killed(t, e, s2.ID)
	if diff := node.HostState(t, "volrunc").Diff(before); diff != "" {
		t.Errorf("the runc sandboxes left on the host:\n%s", diff)
	}
	if got := hostRead(t, local, vol, "/u"); got != "user\nmore\n" {
		t.Errorf("after the kills: %q", got)
	}
}

// TestVolumeRefused: specs whose volumes cannot be mounted fail before anything runs.
func TestVolumeRefused(t *testing.T) {
	node, local, vol := volumeNode(t, "10.232.181.0/24", 16)
	ctx := context.Background()
	plain := node.Engine(t)
	s := newSpec(t, "volnovolumes")
	s.VolumeMounts = []engine.VolumeMount{{VolumeID: vol, Path: "/v"}}
	if _, err := plain.Create(ctx, s); !errors.Is(err, engine.ErrInvalid) {
		t.Errorf("a node without volumes: %v, want ErrInvalid", err)
	}
	plain.Close()
	e := volumeEngine(t, node, local)
	for name, mounts := range map[string][]engine.VolumeMount{
		"unknown volume":  {{VolumeID: "0f6b2b44-5d0c-4c35-9f6e-3b1e3c7a9d10", Path: "/v"}},
		"over the daemon": {{VolumeID: vol, Path: "/lelantos"}},
		"relative path":   {{VolumeID: vol, Path: "v"}},
		"overlapping":     {{VolumeID: vol, Path: "/v"}, {VolumeID: vol, Path: "/v/w"}},
	} {
		s := newSpec(t, "volrefused")
		s.VolumeMounts = mounts
		if _, err := e.Create(ctx, s); err == nil {
			killed(t, e, s.ID)
			t.Errorf("%s: created", name)
		}
		if _, err := e.Get(s.ID); !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("%s: a refused sandbox is left: %v", name, err)
		}
	}
}
