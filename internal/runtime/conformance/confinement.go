package conformance

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"lelantos.dev/lelantos/internal/runtime"
)

// forbiddenCaps are capabilities no sandbox process may hold, by number: each one
// reaches past the sandbox (mounts and namespaces, modules, raw I/O, tracing others,
// the host's clock, network configuration, resource limits and reboot).
var forbiddenCaps = map[string]uint{
	"CAP_DAC_READ_SEARCH": 2, "CAP_NET_ADMIN": 12, "CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17,
	"CAP_SYS_PTRACE": 19, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_RESOURCE": 24,
	"CAP_SYS_TIME": 25, "CAP_MAC_ADMIN": 33, "CAP_BPF": 39,
}

// testAttacks: root inside a sandbox tries to reach the host; each attempt must be
// refused. None of them changes the host even when it gets through.
func testAttacks(t *testing.T, h *Harness, rt runtime.Runtime, opts Options) {
	sb := h.start(t, rt, newID(t, ""))
	attacks := []struct {
		name, op, args string
		// hostPath must exist on the host for the attack to mean anything.
		hostPath       string
		hostKernelOnly bool
	}{
		{name: "write /proc/sys/kernel/core_pattern", op: "core-pattern", hostPath: "/proc/sys/kernel/core_pattern"},
		{name: "write /proc/sysrq-trigger", op: "sysrq", hostPath: "/proc/sysrq-trigger"},
		{name: "read /proc/kcore", op: "read", args: "&path=/proc/kcore", hostPath: "/proc/kcore"},
		{name: "read /proc/keys", op: "read", args: "&path=/proc/keys", hostPath: "/proc/keys"},
		{name: "read /proc/timer_list", op: "read", args: "&path=/proc/timer_list", hostPath: "/proc/timer_list"},
		{name: "read /proc/sched_debug", op: "read", args: "&path=/proc/sched_debug", hostPath: "/proc/sched_debug"},
		{name: "list /sys/firmware", op: "list", args: "&path=/sys/firmware", hostPath: "/sys/firmware"},
		{name: "mount -t proc", op: "mount-proc"},
		{name: "mount --bind /", op: "mount-bind"},
		{name: "load a kernel module", op: "load-module"},
		{name: "ptrace a process of another user", op: "ptrace-other-user"},
		{name: "mknod the host disk and read it", op: "mknod-disk", args: hostDiskArgs(t)},
		// gVisor has user namespaces of its own kernel: one made there reaches nothing.
		{name: "unshare -U then mount", op: "userns-mount", hostKernelOnly: true},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			if a.hostKernelOnly && !opts.HostKernel {
				t.Skipf("%s has its own kernel", rt.Class())
			}
			if _, err := os.Stat(a.hostPath); a.hostPath != "" && err != nil {
				t.Skipf("the host kernel has no %s", a.hostPath)
			}
			got := sb.must(t, "POST", "/attack?op="+a.op+a.args)
			if !strings.HasPrefix(got, "refused") {
				t.Errorf("%s as root in a %s sandbox: %s", a.name, rt.Class(), got)
			} else {
				t.Logf("%s", got)
			}
		})
	}
}

// hostDiskArgs names the block device of the host's root filesystem.
func hostDiskArgs(t *testing.T) string {
	var st unix.Stat_t
	if err := unix.Stat("/", &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("&major=%d&minor=%d", unix.Major(st.Dev), unix.Minor(st.Dev))
}

// testConfinement reads what the kernel says of the sandbox's first process.
func testConfinement(t *testing.T, h *Harness, rt runtime.Runtime, opts Options) {
	sb := h.start(t, rt, newID(t, ""))
	status := sb.must(t, "GET", "/file?path=/proc/1/status")
	t.Run("capabilities", func(t *testing.T) {
		for _, field := range []string{"CapEff", "CapPrm", "CapBnd"} {
			v, err := strconv.ParseUint(statusField(status, field), 16, 64)
			if err != nil {
				t.Fatalf("%s in /proc/1/status: %v", field, err)
			}
			for name, bit := range forbiddenCaps {
				if v&(1<<bit) != 0 {
					t.Errorf("%s holds %s", field, name)
				}
			}
		}
	})
	if !opts.HostKernel {
		return
	}
	checks := []struct {
		name, path string
		ok         func(string) bool
		want       string
		// field, when set, is the one line of the file the check reads.
		field string
	}{
		{"user namespace", "/proc/1/uid_map", func(s string) bool {
			f := strings.Fields(s)
			return len(f) == 3 && f[0] == "0" && f[1] != "0" && f[2] != "4294967295"
		}, "root mapped to an unprivileged host uid", ""},
		{"gid map", "/proc/1/gid_map", func(s string) bool {
			f := strings.Fields(s)
			return len(f) == 3 && f[0] == "0" && f[1] != "0"
		}, "gid 0 mapped to an unprivileged host gid", ""},
		{"seccomp", "/proc/1/status", func(s string) bool { return s == "2" }, "2 (a filter)", "Seccomp"},
		{"no new privileges", "/proc/1/status", func(s string) bool { return s == "1" }, "1", "NoNewPrivs"},
		{"cgroup namespace", "/proc/1/cgroup", func(s string) bool {
			for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
				if !strings.HasSuffix(line, ":/") {
					return false
				}
			}
			return true
		}, "every hierarchy at its root", ""},
	}
	t.Run("an id range of its own", func(t *testing.T) {
		other := h.start(t, rt, newID(t, "o"))
		a, b := sb.must(t, "GET", "/file?path=/proc/1/uid_map"), other.must(t, "GET", "/file?path=/proc/1/uid_map")
		if fa, fb := strings.Fields(a), strings.Fields(b); len(fa) < 2 || len(fb) < 2 || fa[1] == fb[1] {
			t.Errorf("two sandboxes map root to the same host uid: %q and %q", a, b)
		}
	})
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			got, what := sb.must(t, "GET", "/file?path="+c.path), c.path
			if c.field != "" {
				got, what = statusField(got, c.field), c.path+" "+c.field
			}
			if !c.ok(got) {
				t.Errorf("%s: %q, want %s", what, got, c.want)
			}
		})
	}
}

// statusField is the value of one "Name:\tvalue" line of a /proc status file.
func statusField(status, name string) string {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// testOwnership: the template tree's owners show through, root and other users
// can write and change owners in the writable layer.
func testOwnership(t *testing.T, h *Harness, rt runtime.Runtime, _ Options) {
	sb := h.start(t, rt, newID(t, ""))
	steps := []struct{ method, path, want string }{
		{"GET", "/stat?path=/etc/passwd", "0:0 644"},
		{"GET", "/stat?path=/home/user", fmt.Sprintf("%d:%d 755", userID, userID)},
		{"POST", "/file?path=/etc/written&data=x", "ok"},
		{"GET", "/stat?path=/etc/written", "0:0 644"},
		{"POST", fmt.Sprintf("/chown?path=/etc/written&uid=%d", userID), "ok"},
		{"GET", "/stat?path=/etc/written", fmt.Sprintf("%d:%d 644", userID, userID)},
		{"POST", "/chown?path=/etc/passwd&uid=0", "ok"},
		{"GET", "/stat?path=/etc/passwd", "0:0 644"},
	}
	for _, s := range steps {
		if got := sb.must(t, s.method, s.path); got != s.want {
			t.Errorf("%s %s = %q, want %q", s.method, s.path, got, s.want)
		}
	}
}

// testWritableRoot: with WritableRoot the sandbox writes into its tree itself, as
// the tree's owners see it: a file root makes inside belongs to root on the host.
func testWritableRoot(t *testing.T, h *Harness, rt runtime.Runtime, _ Options) {
	h.setup(t)
	tree := t.TempDir()
	if out, err := exec.Command("cp", "-a", h.rootfs+"/.", tree).CombinedOutput(); err != nil {
		t.Fatalf("copy the root filesystem: %v: %s", err, out)
	}
	if err := os.Chmod(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	sb := h.startWith(t, rt, newID(t, ""), func(c *runtime.Config) { c.RootfsPath, c.WritableRoot = tree, true })
	for _, s := range []struct{ method, path, want string }{
		{"GET", "/stat?path=/home/user", fmt.Sprintf("%d:%d 755", userID, userID)},
		{"POST", "/file?path=/etc/built&data=in-the-tree", "ok"},
		{"POST", fmt.Sprintf("/chown?path=/home/user&uid=%d", userID+1), "ok"},
	} {
		if got := sb.must(t, s.method, s.path); got != s.want {
			t.Fatalf("%s %s = %q, want %q", s.method, s.path, got, s.want)
		}
	}
	for _, f := range []struct {
		path string
		uid  uint32
	}{{"/etc/built", 0}, {"/home/user", userID + 1}} {
		var st unix.Stat_t
		if err := unix.Stat(tree+f.path, &st); err != nil {
			t.Fatalf("on the host: %v", err)
		}
		if st.Uid != f.uid || st.Gid != f.uid {
			t.Errorf("on the host %s is owned by %d:%d, want %d:%d", f.path, st.Uid, st.Gid, f.uid, f.uid)
		}
	}
	if b, err := os.ReadFile(tree + "/etc/built"); err != nil || string(b) != "in-the-tree" {
		t.Errorf("on the host /etc/built holds %q (%v)", b, err)
	}
}

// userID owns /home/user in the suite's root filesystem.
const userID = 1000

// chownUserHome gives /home/user under root to userID.
func chownUserHome(root string) error {
	home := root + "/home/user"
	if err := os.MkdirAll(home, 0o755); err != nil {
		return err
	}
	return os.Chown(home, userID, userID)
}
