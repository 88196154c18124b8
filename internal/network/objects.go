package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// loopbackIndex is the index of lo in every network namespace.
const loopbackIndex = 1

// sandboxIface is the name of the sandbox's interface inside its namespace.
const sandboxIface = "eth0"

func (m *Manager) netnsPath(r *record) string { return filepath.Join(m.cfg.NetNSDir, r.NetNS) }

// build creates the kernel objects of r. It leaves whatever it created in
// place on failure; the caller destroys it.
func (m *Manager) build(r *record) error {
	if err := m.step("netns"); err != nil {
		return err
	}
	ns, err := createNetNS(m.netnsPath(r))
	if err != nil {
		return err
	}
	defer ns.Close()
	host, err := openRTNL()
	if err != nil {
		return err
	}
	defer host.Close()

	if err := m.step("veth"); err != nil {
		return err
	}
	if err := host.createVeth(r.HostVeth, sandboxIface, ns.fd, groupFor(r.AllowInternet), m.cfg.MTU); err != nil {
		return err
	}
	if m.fw.ipv6 {
		p := filepath.Join("/proc/sys/net/ipv6/conf", r.HostVeth, "disable_ipv6")
		if err := writeSysctl(p, "1"); err != nil {
			return fmt.Errorf("disable IPv6 on %s: %w", r.HostVeth, err)
		}
	}
	idx, err := host.linkIndex(r.HostVeth)
	if err != nil {
		return err
	}
	if err := host.addAddr(idx, r.Gateway, r.PrefixLen); err != nil {
		return err
	}
	if err := host.setLink(idx, true, nil); err != nil {
		return err
	}

	if err := m.step("sandbox"); err != nil {
		return err
	}
	eth, err := ns.rtnl.linkIndex(sandboxIface)
	if err != nil {
		return err
	}
	if err := ns.rtnl.addAddr(eth, r.Address, r.PrefixLen); err != nil {
		return err
	}
	if err := ns.rtnl.setLink(loopbackIndex, true, nil); err != nil {
		return fmt.Errorf("bring up lo: %w", err)
	}
	if err := ns.rtnl.setLink(eth, true, nil); err != nil {
		return err
	}
	if err := m.step("route"); err != nil {
		return err
	}
	return ns.rtnl.addDefaultRoute(r.Gateway, eth)
}

// step lets tests inject a failure before a build step.
func (m *Manager) step(name string) error {
	if m.fault == nil {
		return nil
	}
	return m.fault(name)
}

// destroy removes the kernel objects of r; missing ones are skipped.
// Deleting the host veth deletes its peer; the namespace goes once its last
// user (a sandbox) has gone too.
func (m *Manager) destroy(r *record) error {
	nl, err := openRTNL()
	if err != nil {
		return err
	}
	defer nl.Close()
	return errors.Join(nl.deleteLink(r.HostVeth), removeNetNS(m.netnsPath(r)))
}

// intact reports whether r's namespace is mounted and its host veth exists.
func (m *Manager) intact(r *record) bool {
	if !isNetNSMount(m.netnsPath(r)) {
		return false
	}
	nl, err := openRTNL()
	if err != nil {
		return false
	}
	defer nl.Close()
	_, err = nl.linkIndex(r.HostVeth)
	return err == nil
}

// Reconcile tears down every allocation whose sandbox keep rejects, then
// removes stray namespaces and veths with this Manager's name pattern that no
// allocation owns (left by a crash or by hand). It carries on past failures
// and returns them all.
func (m *Manager) Reconcile(ctx context.Context, keep func(sandboxID string) bool) error {
	var errs []error
	for _, ep := range m.List() {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("reconcile networks: %w", err)
		}
		if keep(ep.SandboxID) {
			continue
		}
		if err := m.Teardown(ctx, ep.SandboxID); err != nil {
			errs = append(errs, err)
		}
	}
	if err := m.removeStrays(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("reconcile networks: %w", err)
	}
	return nil
}

// removeStrays deletes pattern-named objects no allocation owns. Objects are
// listed before the owners are read: an allocation is registered before its
// objects are created, so a concurrent Setup's objects are never mistaken
// for strays.
func (m *Manager) removeStrays() error {
	var nsNames, links []string
	ents, err := os.ReadDir(m.cfg.NetNSDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("list %s: %w", m.cfg.NetNSDir, err)
	}
	for _, e := range ents {
		if m.nameRE.MatchString(e.Name()) {
			nsNames = append(nsNames, e.Name())
		}
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return fmt.Errorf("list links: %w", err)
	}
	for _, i := range ifs {
		if m.nameRE.MatchString(i.Name) {
			links = append(links, i.Name)
		}
	}
	m.mu.Lock()
	owned := make(map[string]bool, len(m.names))
	for n := range m.names {
		owned[n] = true
	}
	m.mu.Unlock()

	nl, err := openRTNL()
	if err != nil {
		return err
	}
	defer nl.Close()
	var errs []error
	for _, n := range links {
		if !owned[n] {
			errs = append(errs, nl.deleteLink(n))
		}
	}
	for _, n := range nsNames {
		if !owned[n] {
			errs = append(errs, removeNetNS(filepath.Join(m.cfg.NetNSDir, n)))
		}
	}
	return errors.Join(errs...)
}

// isExist reports whether err says an object already exists.
func isExist(err error) bool { return errors.Is(err, unix.EEXIST) || errors.Is(err, os.ErrExist) }
