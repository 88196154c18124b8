package network

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// peerNS makes a namespace joined to the host by a veth whose host end, name,
// carries no sandbox prefix: hostAddr on that end, nsAddr inside, and a default
// route to the host. It stands for a network the host has besides sandboxes.
func peerNS(t *testing.T, name, hostAddr, nsAddr string) string {
	t.Helper()
	gw, _, _ := strings.Cut(hostAddr, "/")
	cmds := [][]string{
		{"netns", "add", name},
		{"link", "add", name, "type", "veth", "peer", "name", "eth0", "netns", name},
		{"addr", "add", hostAddr, "dev", name},
		{"link", "set", name, "up"},
		{"-n", name, "addr", "add", nsAddr, "dev", "eth0"},
		{"-n", name, "link", "set", "eth0", "up"},
		{"-n", name, "route", "add", "default", "via", gw},
	}
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", name).Run()
		exec.Command("ip", "netns", "del", name).Run()
	})
	for _, c := range cmds {
		if out, err := exec.Command("ip", c...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", c, err, out)
		}
	}
	return filepath.Join(DefaultNetNSDir, name)
}

// forwardingState is what the host's forwarding looks like from outside.
type forwardingState struct {
	ipForward string
	forward   string // the FORWARD chain, as iptables -S prints it
}

func hostForwarding(t *testing.T) forwardingState {
	t.Helper()
	v, err := readSysctl(ipForward)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("iptables", "-w", "-S", "FORWARD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return forwardingState{ipForward: v, forward: string(out)}
}

// TestForwardingLeftAsFound: Managers turn forwarding on for their sandboxes only:
// traffic between the host's other networks is forwarded while they run exactly
// when it was before, and the last Manager's Uninstall leaves ip_forward and the
// FORWARD chain as they were, whichever Manager goes first and however often one
// restarts.
func TestForwardingLeftAsFound(t *testing.T) {
	requireRoot(t)
	for _, prev := range []string{"0", "1"} {
		t.Run("ip_forward was "+prev, func(t *testing.T) {
			ctx := context.Background()
			if err := writeSysctl(ipForward, prev); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { writeSysctl(ipForward, "0") })
			cfg1, cfg2 := testConfig(t), testConfig(t)
			cfg2.Subnet = netip.MustParsePrefix("10.232.0.0/16")
			tag := cfg1.NamePrefix[2:]
			left := peerNS(t, "xl"+tag, "198.51.100.1/30", "198.51.100.2/30")
			right := peerNS(t, "xr"+tag, "198.51.100.5/30", "198.51.100.6/30")
			serve(t, right, "tcp4", "198.51.100.6:8080")
			outside := newOutside(t, cfg1)
			serve(t, outside, "tcp4", "0.0.0.0:8080")
			forwards := func() bool { // between the host's two other networks
				wait := blockedWait
				if prev == "1" {
					wait = answerWait // expected to get through: give it time
				}
				c, _, err := dial(left, "198.51.100.6:8080", wait)
				if c != nil {
					c.Close()
				}
				return err == nil
			}
			before := hostForwarding(t)
			if got := forwards(); got != (prev == "1") {
				t.Fatalf("before any Manager: forwarded %v with ip_forward %s", got, prev)
			}

			m1, err := NewManager(ctx, cfg1)
			if err != nil {
				t.Fatal(err)
			}
			m2, err := NewManager(ctx, cfg2)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { // after a failure
				for _, m := range []*Manager{m1, m2} {
					m.Reconcile(ctx, func(string) bool { return false })
					m.Uninstall(ctx)
				}
			})
			if m1, err = NewManager(ctx, cfg1); err != nil { // a restart
				t.Fatal(err)
			}
			if got := hostForwarding(t).ipForward; got != "1" {
				t.Fatalf("ip_forward %s while Managers run, want 1", got)
			}
			if got := forwards(); got != (prev == "1") {
				t.Errorf("while Managers run: forwarded %v between the host's other networks, want %v as before", got, prev == "1")
			}
			ep, err := m1.Setup(ctx, "fwd-sandbox", Options{AllowInternet: true})
			if err != nil {
				t.Fatal(err)
			}
			if c, _, err := dial(ep.NetNSPath, internetAddr+":8080", answerWait); err != nil {
				t.Errorf("a sandbox with internet cannot reach it: %v", err)
			} else {
				c.Close()
			}
			guard, err := exec.Command("iptables", "-w", "-S", forwardGuard).Output()
			if err != nil {
				t.Fatal(err)
			}
			for _, prefix := range []string{cfg1.NamePrefix, cfg2.NamePrefix} {
				if n := strings.Count(string(guard), "-i "+prefix+"+ -j RETURN"); n != 1 {
					t.Errorf("the guard lets %s's traffic through %d times, want once:\n%s", prefix, n, guard)
				}
			}

			// The first Manager leaves; the other still needs forwarding.
			if err := m1.Teardown(ctx, "fwd-sandbox"); err != nil {
				t.Fatal(err)
			}
			if err := m1.Uninstall(ctx); err != nil {
				t.Fatal(err)
			}
			if got := hostForwarding(t).ipForward; got != "1" {
				t.Fatalf("ip_forward %s with a Manager still running, want 1", got)
			}
			if err := m2.Uninstall(ctx); err != nil {
				t.Fatal(err)
			}
			after := hostForwarding(t)
			if after != before {
				t.Errorf("after the last Uninstall: %+v, want it as before: %+v", after, before)
			}
			if got := forwards(); got != (prev == "1") {
				t.Errorf("after: forwarded %v, want %v as before", got, prev == "1")
			}
		})
	}
}

// TestForwardingConcurrentClaimsAndReleases: Managers that start and stop at
// once, as the nodes of parallel test packages and servers do, neither fail
// nor pull the shared guard from under each other: two releases that each
// found no other Manager left used to remove the guard twice.
func TestForwardingConcurrentClaimsAndReleases(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	for round := range 5 {
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := range 4 {
			cfg := testConfig(t)
			cfg.Subnet = netip.MustParsePrefix(fmt.Sprintf("10.229.%d.0/24", round*4+i))
			wg.Go(func() {
				m, err := NewManager(ctx, cfg)
				if err != nil {
					errs <- fmt.Errorf("round %d: start: %w", round, err)
					return
				}
				if err := m.Uninstall(ctx); err != nil {
					errs <- fmt.Errorf("round %d: uninstall: %w", round, err)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
}
