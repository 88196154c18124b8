// Package conformance is the test suite every runtime.Runtime implementation runs.
//
// Run starts real sandboxes whose first process is the probe program (./probe), each
// in a network namespace of its own, and checks the behaviour the engine relies on:
// start and kill, stats, wait, list, disk and memory limits, freeze and thaw, and, where
// the runtime can checkpoint, pause with memory, resume, and fork. It also attacks the
// boundary as root inside (writing the host's kernel settings, mounting, making
// device nodes of the host's disk, tracing other users' processes) and checks that
// the template tree's owners show through and can be changed.
package conformance

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/runtime"
)

// Harness builds what the suite's sandboxes need. It is shared by a test binary's tests.
type Harness struct {
	once    sync.Once
	err     error
	rootfs  string
	probe   string
	nextNet int
	mu      sync.Mutex
	// octet is the second octet of the suite's 10.x.0.0/16.
	octet int
	// nets maps a namespace path to the function that re-applies its addresses.
	nets map[string]func()
}

// rootfs builds, once per test binary, a minimal root filesystem holding the probe.
func (h *Harness) setup(t *testing.T) {
	t.Helper()
	h.once.Do(func() {
		dir, err := os.MkdirTemp("", "conformance-rootfs-")
		if err != nil {
			h.err = err
			return
		}
		for _, d := range []string{"proc", "dev", "sys", "tmp", "root", "etc", "lelantos"} {
			if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
				h.err = err
				return
			}
		}
		_ = os.Chmod(dir, 0o755)
		_ = os.Chmod(filepath.Join(dir, "tmp"), 0o1777)
		passwd := fmt.Sprintf("root:x:0:0:root:/root:/bin/sh\nuser:x:%d:%d::/home/user:/bin/sh\n", userID, userID)
		if err := os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte(passwd), 0o644); err != nil {
			h.err = err
			return
		}
		if err := chownUserHome(dir); err != nil {
			h.err = err
			return
		}
		bin, err := os.MkdirTemp("", "conformance-bin-")
		if err != nil {
			h.err = err
			return
		}
		cmd := exec.Command("go", "build", "-o", filepath.Join(bin, "probe"), "lelantos.dev/lelantos/internal/runtime/conformance/probe")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			h.err = fmt.Errorf("build probe: %v: %s", err, out)
			return
		}
		// Bind mounts keep their host owners: inside a user namespace the probe's
		// directory is another user's, which must be able to read it.
		if err := os.Chmod(bin, 0o755); err != nil {
			h.err = err
			return
		}
		h.rootfs, h.probe = dir, bin
	})
	if h.err != nil {
		t.Fatalf("conformance harness: %v", h.err)
	}
}

// sandbox is one running sandbox of a test.
type sandbox struct {
	id   string
	cfg  runtime.Config
	addr string
}

// config returns a Config for a new sandbox in its own network namespace, and the
// address its probe listens on. Everything is removed when the test ends.
func (h *Harness) config(t *testing.T, rt runtime.Runtime, id string) (runtime.Config, string) {
	t.Helper()
	h.setup(t)
	h.mu.Lock()
	h.nextNet++
	n := h.nextNet
	h.mu.Unlock()
	ns, addr, configure := testNetNS(t, h.octet, n)
	h.mu.Lock()
	if h.nets == nil {
		h.nets = map[string]func(){}
	}
	h.nets[ns] = configure
	h.mu.Unlock()
	dir := t.TempDir()
	cfg := runtime.Config{
		RootfsPath:  h.rootfs,
		Dir:         dir,
		Args:        []string{"/lelantos/probe"},
		Env:         []string{"PATH=/bin:/usr/bin"},
		Hostname:    id,
		NetNSPath:   ns,
		CPUCount:    1,
		MemoryMB:    256,
		DiskSizeMB:  64,
		Mounts:      []runtime.Mount{{Source: h.probe, Destination: "/lelantos"}},
		ConsolePath: filepath.Join(dir, "console.log"),
	}
	return cfg, addr
}

// start starts a sandbox and waits for its probe to answer.
func (h *Harness) start(t *testing.T, rt runtime.Runtime, id string) *sandbox {
	t.Helper()
	return h.startWith(t, rt, id, nil)
}

// startWith is start with the config changed by edit first (nil changes nothing).
func (h *Harness) startWith(t *testing.T, rt runtime.Runtime, id string, edit func(*runtime.Config)) *sandbox {
	t.Helper()
	cfg, addr := h.config(t, rt, id)
	if edit != nil {
		edit(&cfg)
	}
	ctx := context.Background()
	if err := rt.Start(ctx, id, cfg); err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	t.Cleanup(func() { _ = rt.Kill(context.Background(), id) })
	sb := &sandbox{id: id, cfg: cfg, addr: addr}
	sb.waitReady(t)
	return sb
}

func (s *sandbox) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := s.call("GET", "/count"); err == nil {
			return
		} else if time.Now().After(deadline) {
			b, _ := os.ReadFile(s.cfg.ConsolePath)
			t.Fatalf("sandbox %s never answered: %v; console: %s", s.id, err, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var client = &http.Client{Timeout: 30 * time.Second}

// call makes one request to the sandbox's probe and returns the body.
func (s *sandbox) call(method, path string) (string, error) {
	req, err := http.NewRequest(method, "http://"+s.addr+":8080"+path, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return string(b), fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	return strings.TrimSpace(string(b)), err
}

// answers reports whether the probe answers within a short time.
func (s *sandbox) answers() bool {
	c := http.Client{Timeout: 300 * time.Millisecond}
	resp, err := c.Get("http://" + s.addr + ":8080/count")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}

func (s *sandbox) must(t *testing.T, method, path string) string {
	t.Helper()
	out, err := s.call(method, path)
	if err != nil {
		t.Fatalf("sandbox %s: %v", s.id, err)
	}
	return out
}

// testNetNS makes network namespace n with one veth to the host: the sandbox side
// holds the second address of the n-th /30 of 10.octet.0.0/16, the host side the first. Test-only: the product's
// namespaces come from package network.
func testNetNS(t *testing.T, octet, n int) (string, string, func()) {
	t.Helper()
	name := fmt.Sprintf("lelconf%d-%d-%d", octet, os.Getpid()%100000, n)
	host := fmt.Sprintf("lc%d-%d-%d", octet, os.Getpid()%1000, n)
	third, fourth := (n*4)/256, (n*4)%256
	gw := fmt.Sprintf("10.%d.%d.%d", octet, third, fourth+1)
	addr := fmt.Sprintf("10.%d.%d.%d", octet, third, fourth+2)
	script := fmt.Sprintf(`set -e
ip netns add %[1]s
ip link add %[2]s type veth peer name eth0 netns %[1]s
ip addr add %[3]s/30 dev %[2]s
ip link set %[2]s up
ip -n %[1]s link set lo up
ip -n %[1]s link set eth0 up
`, name, host, gw)
	if out, err := exec.Command("sh", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("make test netns: %v: %s", err, out)
	}
	t.Cleanup(func() {
		_ = exec.Command("ip", "link", "del", host).Run()
		_ = exec.Command("ip", "netns", "del", name).Run()
	})
	configure := func() {
		// gVisor takes the namespace's addresses when it starts, so every start and
		// restore needs them put back.
		s := fmt.Sprintf("ip -n %[1]s addr replace %[2]s/30 dev eth0 && ip -n %[1]s route replace default via %[3]s", name, addr, gw)
		if out, err := exec.Command("sh", "-c", s).CombinedOutput(); err != nil {
			t.Fatalf("configure test netns: %v: %s", err, out)
		}
	}
	configure()
	return "/run/netns/" + name, addr, configure
}

// prepareNet re-applies the addresses of cfg's namespace before a start or restore.
func (h *Harness) prepareNet(cfg runtime.Config) {
	h.mu.Lock()
	f := h.nets[cfg.NetNSPath]
	h.mu.Unlock()
	if f != nil {
		f()
	}
}
