package network

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// childEnv marks the test binary re-executed inside a private network
// namespace. That namespace plays the host: the tests create real
// namespaces, veths and iptables rules, but never in the machine's own
// network namespace, whose firewall other people use.
const childEnv = "LELANTOS_NETWORK_TEST_HOSTNS"

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 && os.Getenv(childEnv) == "" {
		os.Exit(runInPrivateNetNS())
	}
	if os.Getenv(childEnv) != "" {
		if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "bring up lo: %v: %s\n", err, out)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}

func runInPrivateNetNS() int {
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "re-run tests in a private network namespace: %v\n", err)
		return 1
	}
	return 0
}

func requireRoot(tb testing.TB) {
	tb.Helper()
	if os.Getenv(childEnv) == "" {
		tb.Skip("needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) for network namespaces")
	}
}

// testConfig returns a Config with names unique to this test, so that tests
// never see each other's (or anyone else's) namespaces in /run/netns.
func testConfig(tb testing.TB) Config {
	b := make([]byte, 2)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	tag := hex.EncodeToString(b)
	return Config{
		StateDir:    filepath.Join(tb.TempDir(), "network"),
		NamePrefix:  "lt" + tag,
		ChainPrefix: "LT" + strings.ToUpper(tag),
	}
}

// newTestManager starts a Manager and removes everything it made when the
// test ends.
func newTestManager(tb testing.TB, cfg Config) *Manager {
	tb.Helper()
	m, err := NewManager(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("NewManager: %v", err)
	}
	tb.Cleanup(func() {
		ctx := context.Background()
		if err := m.Reconcile(ctx, func(string) bool { return false }); err != nil {
			tb.Errorf("cleanup Reconcile: %v", err)
		}
		if err := m.Uninstall(ctx); err != nil {
			tb.Errorf("cleanup Uninstall: %v", err)
		}
	})
	return m
}

// hostState is what a Manager leaves on the host, for before/after checks.
type hostState struct {
	netns, links, records []string
	rules                 string
}

func snapshot(tb testing.TB, cfg Config) hostState {
	tb.Helper()
	var s hostState
	ents, _ := os.ReadDir(DefaultNetNSDir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), cfg.NamePrefix) {
			s.netns = append(s.netns, e.Name())
		}
	}
	ifs, err := net.Interfaces()
	if err != nil {
		tb.Fatal(err)
	}
	for _, i := range ifs {
		if strings.HasPrefix(i.Name, cfg.NamePrefix) {
			s.links = append(s.links, i.Name)
		}
	}
	recs, _ := os.ReadDir(cfg.StateDir)
	for _, r := range recs {
		s.records = append(s.records, r.Name())
	}
	s.rules = iptablesRules(tb)
	return s
}

func (s hostState) String() string {
	return fmt.Sprintf("netns=%v links=%v records=%v", s.netns, s.links, s.records)
}

// iptablesRules returns the IPv4 and IPv6 rule sets without comments and
// counters.
func iptablesRules(tb testing.TB) string {
	tb.Helper()
	var lines []string
	for _, bin := range []string{"iptables-save", "ip6tables-save"} {
		out, err := exec.Command(bin).Output()
		if err != nil {
			tb.Fatalf("%s: %v", bin, err)
		}
		// A table that holds nothing but its built-in chains, accepting, is
		// the same as no table: the first rule ever added creates it.
		var table []string
		empty := true
		for _, l := range strings.Split(string(out), "\n") {
			if l == "" || strings.HasPrefix(l, "#") {
				continue
			}
			if strings.HasPrefix(l, ":") {
				l = strings.SplitN(l, " [", 2)[0]
				f := strings.Fields(l)
				builtin := len(f) == 2 && strings.ToUpper(f[0]) == f[0] && f[1] == "ACCEPT" &&
					strings.Contains(":PREROUTING:INPUT:FORWARD:OUTPUT:POSTROUTING:", f[0]+":")
				empty = empty && builtin
			} else if l != "COMMIT" && !strings.HasPrefix(l, "*") {
				empty = false
			}
			table = append(table, bin+" "+l)
			if l == "COMMIT" {
				if !empty {
					lines = append(lines, table...)
				}
				table, empty = nil, true
			}
		}
	}
	return strings.Join(lines, "\n")
}

// countRules counts the rules (not chain declarations) mentioning s.
func countRules(rules, s string) int {
	n := 0
	for _, l := range strings.Split(rules, "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[1] == "-A" && strings.Contains(l, s) {
			n++
		}
	}
	return n
}

// inNetNS runs fn on a thread inside the namespace at path. Sockets fn opens
// stay in that namespace.
func inNetNS(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer unix.Close(orig)
		target, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer unix.Close(target)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", path, err)
			return
		}
		err = fn()
		if unix.Setns(orig, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}
