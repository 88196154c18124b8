package network

import (
	"context"
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
		HostVeth: r.HostVeth, AllowInternet: r.AllowInternet, Egress: r.Egress,
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
	// With the veth gone nothing can use the rules any more.
	if err := m.dropEgress(e); err != nil {
		return fmt.Errorf("teardown network of %s: %w", sandboxID, err)
	}
	if err := removeRecord(m.cfg.StateDir, sandboxID); err != nil {
		return fmt.Errorf("teardown network of %s: remove record: %w", sandboxID, err)
	}
	m.release(e)
	return nil
}

// SetAllowInternet changes a sandbox's internet access at once, keeping its
// egress rules: established connections stop too, because egress is
// filtered per packet.
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
	if err := m.setOptionsLocked(e, Options{AllowInternet: allow, Egress: e.rec.Egress}); err != nil {
		return fmt.Errorf("set internet access of %s: %w", sandboxID, err)
	}
	return nil
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
