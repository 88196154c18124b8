package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

func TestSetupBuildsNamespace(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	cfg := testConfig(t)
	cfg.MTU = 1400
	m := newTestManager(t, cfg)
	rulesBefore := iptablesRules(t)

	ep, err := m.Setup(ctx, "sbx1", Options{AllowInternet: true})
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	if ep.SandboxID != "sbx1" || ep.PrefixLen != 30 || !cfg.subnetOrDefault().Contains(ep.Address) ||
		ep.Gateway.Next() != ep.Address || !ep.AllowInternet {
		t.Errorf("endpoint = %+v", ep)
	}
	if len(ep.HostVeth) != 15 || !strings.HasPrefix(ep.HostVeth, cfg.NamePrefix) {
		t.Errorf("host veth name %q: want 15 characters starting with %q", ep.HostVeth, cfg.NamePrefix)
	}
	if ep.NetNSPath != filepath.Join(DefaultNetNSDir, ep.HostVeth) || !isNetNSMount(ep.NetNSPath) {
		t.Errorf("netns path %s is not a mounted namespace", ep.NetNSPath)
	}
	if got, ok := m.Get("sbx1"); !ok || !reflect.DeepEqual(got, ep) {
		t.Errorf("Get = %+v, %v; want %+v", got, ok, ep)
	}
	if _, err := os.Stat(filepath.Join(cfg.StateDir, "sbx1.json")); err != nil {
		t.Errorf("allocation record: %v", err)
	}
	if after := iptablesRules(t); after != rulesBefore {
		t.Errorf("Setup changed iptables rules:\nbefore:\n%s\nafter:\n%s", rulesBefore, after)
	}

	// Host side: address, up, egress group, IPv6 off.
	hostIf, err := net.InterfaceByName(ep.HostVeth)
	if err != nil {
		t.Fatal(err)
	}
	if hostIf.Flags&net.FlagUp == 0 || hostIf.MTU != 1400 {
		t.Errorf("host veth: flags %v, MTU %d; want up, 1400", hostIf.Flags, hostIf.MTU)
	}
	assertAddrs(t, hostIf, ep.Gateway.String()+"/30")
	assertFile(t, "/proc/sys/net/ipv6/conf/"+ep.HostVeth+"/disable_ipv6", "1")
	out, err := exec.Command("ip", "-d", "link", "show", ep.HostVeth).CombinedOutput()
	if err != nil || !strings.Contains(string(out), fmt.Sprintf("group %d", InternetGroup)) {
		t.Errorf("host veth group: want %d in %s (%v)", InternetGroup, out, err)
	}

	// Inside: exactly lo and eth0, addressed, up, default route, IPv6 off.
	err = inNetNS(ep.NetNSPath, func() error {
		ifs, err := net.Interfaces()
		if err != nil {
			return err
		}
		var names []string
		for _, i := range ifs {
			names = append(names, i.Name)
			if i.Flags&net.FlagUp == 0 {
				t.Errorf("%s is down inside the namespace", i.Name)
			}
		}
		if !reflect.DeepEqual(sorted(names), []string{"eth0", "lo"}) {
			t.Errorf("interfaces in namespace = %v, want [eth0 lo]", names)
		}
		eth, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		if eth.MTU != 1400 {
			t.Errorf("eth0 MTU = %d, want 1400", eth.MTU)
		}
		assertAddrs(t, eth, ep.Address.String()+"/30")
		routes, err := os.ReadFile("/proc/thread-self/net/route")
		if err != nil {
			return err
		}
		gw := ep.Gateway.As4()
		wantGW := fmt.Sprintf("%02X%02X%02X%02X", gw[3], gw[2], gw[1], gw[0])
		if !strings.Contains(string(routes), "eth0\t00000000\t"+wantGW) {
			t.Errorf("no default route via %s in\n%s", ep.Gateway, routes)
		}
		assertFile(t, "/proc/sys/net/ipv6/conf/eth0/disable_ipv6", "1")
		assertFile(t, "/proc/sys/net/ipv6/conf/lo/disable_ipv6", "1")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func assertAddrs(t *testing.T, i *net.Interface, want ...string) {
	t.Helper()
	addrs, err := i.Addrs()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range addrs {
		got = append(got, a.String())
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("addresses of %s = %v, want %v", i.Name, got, want)
	}
}

func assertFile(t *testing.T, path, want string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || strings.TrimSpace(string(b)) != want {
		t.Errorf("%s = %q, %v; want %q", path, b, err, want)
	}
}

func (cfg Config) subnetOrDefault() netip.Prefix {
	if cfg.Subnet.IsValid() {
		return cfg.Subnet
	}
	return DefaultSubnet
}

func TestSetupTeardownLeavesNothing(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	cfg := testConfig(t)
	pristine := snapshot(t, cfg)
	m, err := NewManager(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	installed := snapshot(t, cfg)
	if n := countRules(installed.rules, cfg.ChainPrefix); n < 15 {
		t.Fatalf("only %d rules mention %s after NewManager:\n%s", n, cfg.ChainPrefix, installed.rules)
	}
	for i := range 50 {
		id := fmt.Sprintf("cycle%d", i)
		if _, err := m.Setup(ctx, id, Options{AllowInternet: i%2 == 0}); err != nil {
			t.Fatalf("Setup %s: %v", id, err)
		}
		if during := snapshot(t, cfg); len(during.netns) != 1 || len(during.links) != 1 || len(during.records) != 1 {
			t.Fatalf("during cycle %d: %v", i, during)
		}
		if err := m.Teardown(ctx, id); err != nil {
			t.Fatalf("Teardown %s: %v", id, err)
		}
	}
	if after := snapshot(t, cfg); !reflect.DeepEqual(after, installed) {
		t.Fatalf("after 50 cycles: %v, rules equal: %v; want %v", after, after.rules == installed.rules, installed)
	}
	if err := m.Uninstall(ctx); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t, cfg); after.rules != pristine.rules {
		t.Fatalf("Uninstall left rules:\nbefore:\n%s\nafter:\n%s", pristine.rules, after.rules)
	}
}

func TestConcurrentSetupGetsDistinctAddresses(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	cfg := testConfig(t)
	m := newTestManager(t, cfg)
	before := snapshot(t, cfg)

	const n = 20
	eps := make([]*Endpoint, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { eps[i], errs[i] = m.Setup(ctx, fmt.Sprintf("conc%d", i), Options{}) })
	}
	wg.Wait()
	addrs, names := map[netip.Addr]bool{}, map[string]bool{}
	for i, ep := range eps {
		if errs[i] != nil {
			t.Fatalf("Setup conc%d: %v", i, errs[i])
		}
		addrs[ep.Address], addrs[ep.Gateway], names[ep.HostVeth] = true, true, true
	}
	if len(addrs) != 2*n || len(names) != n {
		t.Fatalf("got %d distinct addresses and %d names, want %d and %d", len(addrs), len(names), 2*n, n)
	}
	if s := snapshot(t, cfg); len(s.netns) != n || len(s.links) != n || len(s.records) != n {
		t.Fatalf("after concurrent Setup: %v", s)
	}
	for i := range n {
		wg.Go(func() { errs[i] = m.Teardown(ctx, fmt.Sprintf("conc%d", i)) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t, cfg); !reflect.DeepEqual(after, before) {
		t.Fatalf("after concurrent Teardown: %v, want %v", after, before)
	}
}

func TestRestartReloadsAllocations(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	cfg := testConfig(t)
	m1 := newTestManager(t, cfg)
	a, err := m1.Setup(ctx, "a", Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := m1.Setup(ctx, "b", Options{AllowInternet: true})
	if err != nil {
		t.Fatal(err)
	}
	rules := iptablesRules(t)
	aIf, _ := net.InterfaceByName(a.HostVeth)

	m2 := newTestManager(t, cfg) // the restarted process
	if got := iptablesRules(t); got != rules {
		t.Errorf("second NewManager changed the rules (not idempotent):\n%s\nvs\n%s", rules, got)
	}
	if got := m2.List(); !reflect.DeepEqual(got, []*Endpoint{a, b}) {
		t.Fatalf("List after restart = %+v, want %+v", got, []*Endpoint{a, b})
	}
	// Setup of a re-adopted sandbox keeps its intact network as it is.
	a2, err := m2.Setup(ctx, "a", Options{})
	if err != nil {
		t.Fatal(err)
	}
	aIf2, err := net.InterfaceByName(a.HostVeth)
	if err != nil || !reflect.DeepEqual(a2, a) || aIf2.Index != aIf.Index {
		t.Errorf("re-Setup after restart = %+v (veth %v, %v); want the same untouched network %+v", a2, aIf2, err, a)
	}
	c, err := m2.Setup(ctx, "c", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Address == a.Address || c.Address == b.Address || c.HostVeth == a.HostVeth {
		t.Errorf("new allocation %+v collides with a re-adopted one", c)
	}
	for _, id := range []string{"a", "b", "c"} {
		if err := m2.Teardown(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if s := snapshot(t, cfg); len(s.netns)+len(s.links)+len(s.records) != 0 {
		t.Fatalf("left behind: %v", s)
	}
}

func TestSetupRebuildsMissingObjects(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	cfg := testConfig(t)
	m := newTestManager(t, cfg)
	ep, err := m.Setup(ctx, "reboot", Options{})
	if err != nil {
		t.Fatal(err)
	}
	// What a host reboot does: the kernel objects vanish, the record stays.
	if out, err := exec.Command("ip", "link", "del", ep.HostVeth).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if err := removeNetNS(ep.NetNSPath); err != nil {
		t.Fatal(err)
	}
	got, err := m.Setup(ctx, "reboot", Options{AllowInternet: true})
	if err != nil {
		t.Fatal(err)
	}
	if got.Address != ep.Address || got.HostVeth != ep.HostVeth || !got.AllowInternet {
		t.Errorf("rebuilt endpoint %+v, want address %s and veth %s with internet", got, ep.Address, ep.HostVeth)
	}
	if !m.intact(&record{HostVeth: got.HostVeth, NetNS: got.HostVeth}) {
		t.Errorf("network not rebuilt")
	}
}

func TestSetupFailureCleansUp(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	for _, step := range []string{"netns", "veth", "sandbox", "route"} {
		t.Run(step, func(t *testing.T) {
			cfg := testConfig(t)
			m := newTestManager(t, cfg)
			before := snapshot(t, cfg)
			injected := errors.New("injected")
			m.fault = func(s string) error {
				if s == step {
					return injected
				}
				return nil
			}
			if _, err := m.Setup(ctx, "broken", Options{}); !errors.Is(err, injected) {
				t.Fatalf("Setup error = %v, want the injected one", err)
			}
			if after := snapshot(t, cfg); !reflect.DeepEqual(after, before) {
				t.Errorf("failed Setup left %v, want %v", after, before)
			}
			if _, ok := m.Get("broken"); ok {
				t.Errorf("failed Setup left an allocation")
			}
			m.fault = nil
			if _, err := m.Setup(ctx, "broken", Options{}); err != nil {
				t.Errorf("Setup after a failed one: %v", err)
			}
		})
	}
}

func TestTeardownIsIdempotent(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	cfg := testConfig(t)
	m := newTestManager(t, cfg)
	if err := m.Teardown(ctx, "never-existed"); err != nil {
		t.Errorf("Teardown of unknown sandbox: %v", err)
	}
	ep, err := m.Setup(ctx, "gone", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := removeNetNS(ep.NetNSPath); err != nil { // half gone already
		t.Fatal(err)
	}
	for i := range 2 {
		if err := m.Teardown(ctx, "gone"); err != nil {
			t.Errorf("Teardown #%d: %v", i+1, err)
		}
	}
	if s := snapshot(t, cfg); len(s.netns)+len(s.links)+len(s.records) != 0 {
		t.Errorf("left behind: %v", s)
	}
	if err := m.SetAllowInternet(ctx, "gone", true); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetAllowInternet of a removed sandbox = %v, want ErrNotFound", err)
	}
}
