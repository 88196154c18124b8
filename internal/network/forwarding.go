package network

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Sandboxes reach the internet through the host, which must forward IPv4 for
// that (net.ipv4.ip_forward). Turning that on host-wide would also make the host
// forward between any other interfaces it has, so the Managers of a host share
// one guard chain that makes forwarding the host did not do before the first of
// them started impossible still, and that remembers what ip_forward was then:
//
//	-A FORWARD -j LELANTOS-FORWARDING                  (first in FORWARD)
//	-A LELANTOS-FORWARDING -i <prefix>+ -j RETURN      (one pair per Manager: its
//	-A LELANTOS-FORWARDING -o <prefix>+ -j RETURN       traffic goes on to its chains)
//	-A LELANTOS-FORWARDING -m comment --comment "ip_forward was 0"
//	-A LELANTOS-FORWARDING -j DROP                     (only if it was 0)
//
// The Manager that creates the chain records ip_forward as it found it; the one
// whose Uninstall leaves no other Manager in it puts ip_forward back and removes
// the chain. The chain lives as long as the host's iptables state does, so after
// a reboot, which resets both, the next Manager records the fresh value again.

// forwardGuard is the chain all Managers of a host share. Its name cannot clash
// with any Manager's own chains: chain prefixes have no "-".
const forwardGuard = "LELANTOS-FORWARDING"

// ipForward is the sysctl sandboxes' egress needs.
const ipForward = "/proc/sys/net/ipv4/ip_forward"

// recordComment is the guard's comment recording ip_forward's earlier value.
func recordComment(prev string) string { return "ip_forward was " + prev }

// forwardingLock is the file whose lock serializes claims and releases of the
// guard among every Manager of the host, in any process: a release that finds
// no other Manager in the guard removes it, which must not interleave with
// another release or a claim.
const forwardingLock = "/run/lelantos-forwarding.lock"

// lockForwarding takes the host's forwarding lock, waiting until ctx ends;
// the returned function releases it.
func lockForwarding(ctx context.Context) (func(), error) {
	f, err := os.OpenFile(forwardingLock, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock forwarding: %w", err)
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil // closing drops the lock
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock forwarding: %w", err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock forwarding: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// claimForwarding joins this Manager to the guard, creating it (and recording
// ip_forward) if it is the first, then turns ip_forward on. It is idempotent.
func (f *firewall) claimForwarding(ctx context.Context) error {
	unlock, err := lockForwarding(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	prev, err := readSysctl(ipForward)
	if err != nil {
		return fmt.Errorf("read ip_forward: %w", err)
	}
	// Creating the chain is the atomic step: only one Manager can be first.
	if run(ctx, nil, "iptables", "-w", "-N", forwardGuard) == nil {
		rules := [][]string{{"-A", forwardGuard, "-m", "comment", "--comment", recordComment(prev)}}
		if prev != "1" {
			rules = append(rules, []string{"-A", forwardGuard, "-j", "DROP"})
		}
		for _, r := range rules {
			if err := run(ctx, nil, "iptables", append([]string{"-w"}, r...)...); err != nil {
				return fmt.Errorf("guard forwarding: %w", err)
			}
		}
	}
	for _, r := range f.guardRules() {
		if run(ctx, nil, "iptables", append([]string{"-w", "-C", forwardGuard}, r...)...) == nil {
			continue
		}
		if err := run(ctx, nil, "iptables", append([]string{"-w", "-I", forwardGuard, "1"}, r...)...); err != nil {
			return fmt.Errorf("guard forwarding: %w", err)
		}
	}
	if err := ensureJumps(ctx, "iptables", []jump{{"filter", "FORWARD", forwardGuard}}); err != nil {
		return fmt.Errorf("guard forwarding: %w", err)
	}
	if err := writeSysctl(ipForward, "1"); err != nil {
		return fmt.Errorf("enable ip_forward: %w", err)
	}
	return nil
}

// guardRules are the rules that let this Manager's traffic through the guard.
func (f *firewall) guardRules() [][]string {
	return [][]string{{"-i", f.iface, "-j", "RETURN"}, {"-o", f.iface, "-j", "RETURN"}}
}

// releaseForwarding takes this Manager out of the guard; the last one out puts
// ip_forward back as it was and removes the guard. A host without the guard
// (it was removed by hand) is left as it is.
func (f *firewall) releaseForwarding(ctx context.Context) error {
	unlock, err := lockForwarding(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if run(ctx, nil, "iptables", "-w", "-S", forwardGuard) != nil {
		return nil
	}
	for _, r := range f.guardRules() {
		for run(ctx, nil, "iptables", append([]string{"-w", "-C", forwardGuard}, r...)...) == nil {
			if err := run(ctx, nil, "iptables", append([]string{"-w", "-D", forwardGuard}, r...)...); err != nil {
				return fmt.Errorf("release forwarding: %w", err)
			}
		}
	}
	rules, err := output(ctx, "iptables", "-w", "-S", forwardGuard)
	if err != nil {
		return fmt.Errorf("release forwarding: %w", err)
	}
	prev := ""
	for _, l := range strings.Split(rules, "\n") {
		if strings.Contains(l, "-j RETURN") {
			return nil // another Manager still needs forwarding
		}
		if _, v, ok := strings.Cut(l, `--comment "`+recordComment("")); ok {
			prev = strings.TrimSuffix(strings.TrimSpace(v), `"`)
		}
	}
	if err := removeChains(ctx, "iptables", []jump{{"filter", "FORWARD", forwardGuard}}); err != nil {
		return fmt.Errorf("release forwarding: %w", err)
	}
	if prev != "0" && prev != "1" {
		return nil // the record is gone: leave ip_forward as it is
	}
	if err := writeSysctl(ipForward, prev); err != nil {
		return fmt.Errorf("restore ip_forward: %w", err)
	}
	return nil
}

// readSysctl reads a /proc/sys file of the calling thread's namespace.
func readSysctl(path string) (string, error) {
	b, err := os.ReadFile(path)
	return strings.TrimSpace(string(b)), err
}
