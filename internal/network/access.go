package network

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
)

// endpoint returns a snapshot of e for callers.
func (m *Manager) endpoint(e *entry) *Endpoint {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.endpointLocked(e)
}

func (m *Manager) endpointLocked(e *entry) *Endpoint {
	r := &e.rec
	return &Endpoint{
		SandboxID: r.SandboxID, NetNSPath: filepath.Join(m.cfg.NetNSDir, r.NetNS),
		Address: r.Address, Gateway: r.Gateway, PrefixLen: r.PrefixLen,
		HostVeth: r.HostVeth, AllowInternet: r.AllowInternet,
	}
}

// Get returns the sandbox's allocation. It may describe a network whose
// Setup is still running or failed half-way; Setup's result is the live one.
func (m *Manager) Get(sandboxID string) (*Endpoint, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entries[sandboxID]
	if e == nil {
		return nil, false
	}
	return m.endpointLocked(e), true
}

// List returns every allocation (those on disk when the Manager started and
// those made since), sorted by sandbox ID, for re-adoption after a restart.
func (m *Manager) List() []*Endpoint {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*Endpoint, 0, len(m.entries))
	for _, e := range m.entries {
		out = append(out, m.endpointLocked(e))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SandboxID < out[j].SandboxID })
	return out
}

// Teardown removes the sandbox's veth pair and namespace, then its record.
// Tearing down an unknown, half-built or already removed network is not an
// error; on a real failure the record stays so the call can be retried.
func (m *Manager) Teardown(ctx context.Context, sandboxID string) error {
	m.mu.Lock()
	e := m.entries[sandboxID]
	m.mu.Unlock()
	if e == nil {
		return nil
	}
	e.op.Lock()
	defer e.op.Unlock()
	if e.gone {
		return nil
	}
	if err := m.destroy(&e.rec); err != nil {
		return fmt.Errorf("teardown network of %s: %w", sandboxID, err)
	}
	if err := removeRecord(m.cfg.StateDir, sandboxID); err != nil {
		return fmt.Errorf("teardown network of %s: remove record: %w", sandboxID, err)
	}
	m.release(e)
	return nil
}

// SetAllowInternet changes a sandbox's egress policy at once: established
// connections stop too, because egress is filtered per packet.
func (m *Manager) SetAllowInternet(ctx context.Context, sandboxID string, allow bool) error {
	m.mu.Lock()
	e := m.entries[sandboxID]
	m.mu.Unlock()
	if e == nil {
		return fmt.Errorf("set internet access of %s: %w", sandboxID, ErrNotFound)
	}
	e.op.Lock()
	defer e.op.Unlock()
	if e.gone {
		return fmt.Errorf("set internet access of %s: %w", sandboxID, ErrNotFound)
	}
	if err := m.setAllowLocked(e, allow); err != nil {
		return fmt.Errorf("set internet access of %s: %w", sandboxID, err)
	}
	return nil
}

// setAllowLocked applies allow to the record and the veth, in the order that
// never leaves the veth more open than the record says.
func (m *Manager) setAllowLocked(e *entry, allow bool) error {
	if e.rec.AllowInternet == allow {
		return nil
	}
	nl, err := openRTNL()
	if err != nil {
		return err
	}
	defer nl.Close()
	setDev := func() error {
		err := nl.setGroup(e.rec.HostVeth, groupFor(allow))
		if errors.Is(err, errNoDevice) {
			return nil
		}
		return err
	}
	if !allow {
		if err := setDev(); err != nil {
			return err
		}
	}
	old := e.rec.AllowInternet
	m.setAllowRecord(e, allow)
	if err := writeRecord(m.cfg.StateDir, &e.rec); err != nil {
		m.setAllowRecord(e, old)
		return fmt.Errorf("record allocation: %w", err)
	}
	if allow {
		return setDev()
	}
	return nil
}

func (m *Manager) setAllowRecord(e *entry, allow bool) {
	m.mu.Lock()
	e.rec.AllowInternet = allow
	m.mu.Unlock()
}

// Uninstall removes the host-wide iptables chains and jumps, and, unless
// another Manager on the host still needs it, puts ip_forward back as it was
// before the first of them started. It fails with ErrInUse while allocations
// remain.
func (m *Manager) Uninstall(ctx context.Context) error {
	m.mu.Lock()
	n := len(m.entries)
	m.mu.Unlock()
	if n > 0 {
		return fmt.Errorf("uninstall network: %d allocations: %w", n, ErrInUse)
	}
	if err := m.fw.uninstall(ctx); err != nil {
		return fmt.Errorf("uninstall network: %w", err)
	}
	if err := m.fw.releaseForwarding(ctx); err != nil {
		return fmt.Errorf("uninstall network: %w", err)
	}
	return nil
}
