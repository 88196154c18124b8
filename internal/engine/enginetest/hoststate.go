package enginetest

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// HostState is what a node's sandboxes hold on the host, for before/after checks: the
// processes, mounts, network namespaces, cgroups, veths and files that a killed
// sandbox must not leave behind.
type HostState struct {
	// Processes are "pid comm" of host processes whose command line mentions the
	// node's data directory or that sit in the cgroup of one of its sandboxes.
	Processes []string
	// Mounts are mountinfo lines naming the data directory or the node's namespaces.
	Mounts []string
	// NetNS are the node's network namespace files.
	NetNS []string
	// Cgroups are sandbox cgroup directories, in any hierarchy, of matching ids.
	Cgroups []string
	// Links are the node's host-side veths.
	Links []string
	// Files are the entries of the data directory's per-sandbox directories: sandbox
	// directories, network allocation records and runtime state.
	Files []string
}

// runscNullNetNS is the namespace mount runsc keeps in its state directory from the
// node's first sandbox on: node state, not a sandbox's. (Sandboxes started at once
// the first time may each mount it, stacked.)
const runscNullNetNS = "runsc/null-netns"

// HostState samples what the node's sandboxes hold on the host; cgroups and
// processes are matched to sandboxes by their id starting with idPrefix.
func (n *Node) HostState(t testing.TB, idPrefix string) HostState {
	t.Helper()
	nullNetNS := filepath.Join(n.DataDir, runscNullNetNS)
	var s HostState
	ownCgroup := func(line string) bool {
		_, path, ok := strings.Cut(line, ":/lelantos/")
		return ok && strings.HasPrefix(path, idPrefix)
	}
	pids, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range pids {
		cmdline, err := os.ReadFile(filepath.Join(p, "cmdline"))
		if err != nil {
			continue // gone meanwhile
		}
		cg, _ := os.ReadFile(filepath.Join(p, "cgroup"))
		mine := bytes.Contains(cmdline, []byte(n.DataDir))
		for _, l := range strings.Split(string(cg), "\n") {
			mine = mine || ownCgroup(l)
		}
		if mine {
			comm, _ := os.ReadFile(filepath.Join(p, "comm"))
			s.Processes = append(s.Processes, filepath.Base(p)+" "+strings.TrimSpace(string(comm)))
		}
	}
	if f, err := os.Open("/proc/self/mountinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			l := sc.Text()
			if strings.Contains(l, nullNetNS) {
				continue
			}
			if strings.Contains(l, n.DataDir) || strings.Contains(l, "/run/netns/"+n.NamePrefix) {
				s.Mounts = append(s.Mounts, l)
			}
		}
		f.Close()
	}
	if ents, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), n.NamePrefix) {
				s.NetNS = append(s.NetNS, e.Name())
			}
		}
	}
	cgs, _ := filepath.Glob("/sys/fs/cgroup/*/lelantos/" + idPrefix + "*")
	cg2, _ := filepath.Glob("/sys/fs/cgroup/lelantos/" + idPrefix + "*")
	for _, d := range append(cgs, cg2...) {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			s.Cgroups = append(s.Cgroups, d)
		}
	}
	if ifs, err := net.Interfaces(); err == nil {
		for _, i := range ifs {
			if strings.HasPrefix(i.Name, n.NamePrefix) {
				s.Links = append(s.Links, i.Name)
			}
		}
	}
	for _, d := range []string{"sandboxes", "network", "runsc", "runc"} {
		ents, _ := os.ReadDir(filepath.Join(n.DataDir, d))
		for _, e := range ents {
			if f := filepath.Join(d, e.Name()); f != runscNullNetNS {
				s.Files = append(s.Files, f)
			}
		}
	}
	return s
}

// SettledHostState is HostState once it stops changing: sampled every 50 ms
// until it has stayed the same for a whole second, for at most 20 s. A
// runtime may remove a sandbox's state after the operation that ended it has
// returned (a gVisor checkpoint does), and on a loaded machine that removal
// may start a few hundred milliseconds later, so a baseline taken right after
// such an operation uses it.
func (n *Node) SettledHostState(t testing.TB, idPrefix string) HostState {
	t.Helper()
	const quietFor = time.Second
	prev := n.HostState(t, idPrefix)
	quietSince := time.Now()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		now := n.HostState(t, idPrefix)
		if now.Diff(prev) != "" {
			prev, quietSince = now, time.Now()
			continue
		}
		if time.Since(quietSince) >= quietFor {
			return now
		}
	}
	t.Fatalf("the host state of sandboxes %s* did not settle in 20 s", idPrefix)
	return prev
}

// Diff describes how s differs from before, field by field; "" when they are equal.
func (s HostState) Diff(before HostState) string {
	var b strings.Builder
	va, vb := reflect.ValueOf(s), reflect.ValueOf(before)
	for i := range va.NumField() {
		now, was := va.Field(i).Interface().([]string), vb.Field(i).Interface().([]string)
		var added, removed []string
		for _, x := range now {
			if !slices.Contains(was, x) {
				added = append(added, x)
			}
		}
		for _, x := range was {
			if !slices.Contains(now, x) {
				removed = append(removed, x)
			}
		}
		if len(added)+len(removed) > 0 {
			fmt.Fprintf(&b, "%s: added %q, removed %q\n", va.Type().Field(i).Name, added, removed)
		}
	}
	return b.String()
}

// Forwarding is the host's IPv4 forwarding as all its nodes share it: the
// ip_forward setting and the FORWARD chain (policy and rules).
type Forwarding struct {
	IPForward string
	Chain     []string
}

// HostForwarding samples the host's forwarding.
func HostForwarding(t testing.TB) Forwarding {
	t.Helper()
	v, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if err != nil {
		t.Fatalf("host forwarding: %v", err)
	}
	out, err := exec.Command("iptables", "-w", "-S", "FORWARD").Output()
	if err != nil {
		t.Fatalf("host forwarding: iptables -S FORWARD: %v", err)
	}
	return Forwarding{IPForward: strings.TrimSpace(string(v)), Chain: strings.Split(strings.TrimSpace(string(out)), "\n")}
}

// Diff describes how f differs from before; "" when they are equal.
func (f Forwarding) Diff(before Forwarding) string {
	var b strings.Builder
	if f.IPForward != before.IPForward {
		fmt.Fprintf(&b, "ip_forward: %s, was %s\n", f.IPForward, before.IPForward)
	}
	if !slices.Equal(f.Chain, before.Chain) {
		fmt.Fprintf(&b, "FORWARD: %q, was %q\n", f.Chain, before.Chain)
	}
	return b.String()
}
