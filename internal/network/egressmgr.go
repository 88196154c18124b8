package network

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
)

// SetOptions replaces a sandbox's network choices (internet access and egress
// rules) at once: new connections follow them from the moment it returns,
// and so do established ones, since the firewall filters egress per packet
// and the egress proxy closes the connections it carries that the new rules
// refuse. The choices are recorded, so a restarted Manager keeps them.
func (m *Manager) SetOptions(ctx context.Context, sandboxID string, opts Options) error {
	if err := opts.Egress.Validate(); err != nil {
		return fmt.Errorf("set network options of %s: %w", sandboxID, err)
	}
	if opts.Egress.empty() {
		opts.Egress = nil
	}
	m.mu.Lock()
	e := m.entries[sandboxID]
	m.mu.Unlock()
	if e == nil {
		return fmt.Errorf("set network options of %s: %w", sandboxID, ErrNotFound)
	}
	e.op.Lock()
	defer e.op.Unlock()
	if e.gone {
		return fmt.Errorf("set network options of %s: %w", sandboxID, ErrNotFound)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("set network options of %s: %w", sandboxID, err)
	}
	if err := m.setOptionsLocked(e, opts); err != nil {
		return fmt.Errorf("set network options of %s: %w", sandboxID, err)
	}
	return nil
}

// setOptionsLocked applies opts to the veth's group, the egress chains and
// the record. Internet access is taken away before anything else and given
// last, so the veth is never more open than both the old and the new record
// say; a failure puts the old rules back. Call with e.op held.
func (m *Manager) setOptionsLocked(e *entry, opts Options) error {
	oldAllow, oldEgress := e.rec.AllowInternet, e.rec.Egress
	sameRules := opts.Egress.equal(oldEgress)
	if opts.AllowInternet == oldAllow && sameRules {
		return nil
	}
	if !opts.AllowInternet && oldAllow {
		if err := setGroup(e.rec.HostVeth, false); err != nil {
			return err
		}
	}
	if !sameRules {
		m.setRecord(e, oldAllow, opts.Egress)
		if err := m.renderEgress(e, oldEgress); err != nil {
			m.setRecord(e, oldAllow, oldEgress)
			return err
		}
	}
	m.setRecord(e, opts.AllowInternet, opts.Egress)
	if err := writeRecord(m.cfg.StateDir, &e.rec); err != nil {
		m.setRecord(e, oldAllow, oldEgress)
		if !sameRules {
			if rerr := m.renderEgress(e, opts.Egress); rerr != nil {
				err = errors.Join(err, fmt.Errorf("put the old egress rules back: %w", rerr))
			}
		}
		return fmt.Errorf("record allocation: %w", err)
	}
	if opts.AllowInternet && !oldAllow {
		if err := setGroup(e.rec.HostVeth, true); err != nil {
			return err
		}
	}
	m.mu.Lock()
	px := m.proxy
	m.mu.Unlock()
	if px != nil {
		px.recheck(e.rec.Address)
	}
	return nil
}

// setRecord changes the choices held in memory, which lookups read.
func (m *Manager) setRecord(e *entry, allow bool, egress *Egress) {
	m.mu.Lock()
	e.rec.AllowInternet, e.rec.Egress = allow, egress
	m.mu.Unlock()
}

// setGroup puts a host veth in or out of the internet group; a veth that
// does not exist (yet) is left to Setup, which creates it in the group its
// record says.
func setGroup(veth string, allow bool) error {
	nl, err := openRTNL()
	if err != nil {
		return err
	}
	defer nl.Close()
	err = nl.setGroup(veth, groupFor(allow))
	if errors.Is(err, errNoDevice) {
		return nil
	}
	return err
}

// egressRules returns the rules of every sandbox that has some, by slot.
func (m *Manager) egressRules() []sandboxRules {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []sandboxRules
	for _, e := range m.entries {
		if !e.rec.Egress.empty() && !e.gone {
			out = append(out, sandboxRules{veth: e.rec.HostVeth, slot: e.slot, egress: e.rec.Egress})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].slot < out[j].slot })
	return out
}

// renderEgress brings the firewall in line with e's rules in memory, which
// were old before: its chain filled, or deleted when it has none left.
func (m *Manager) renderEgress(e *entry, old *Egress) error {
	m.fwMu.Lock()
	defer m.fwMu.Unlock()
	all := m.egressRules()
	if e.rec.Egress.empty() {
		if old.empty() {
			return nil
		}
		return m.fw.applyEgress(context.Background(), all, nil, []int{e.slot})
	}
	return m.fw.applyEgress(context.Background(), all,
		[]sandboxRules{{veth: e.rec.HostVeth, slot: e.slot, egress: e.rec.Egress}}, nil)
}

// fillEgress installs the rules of a new entry. Call with e.op held.
func (m *Manager) fillEgress(e *entry) error {
	return m.renderEgress(e, nil)
}

// dropEgress removes an entry's chain before its slot is given back (a slot
// given back may at once be another sandbox's, with a chain of the same
// name). Call with e.op held; the record in memory loses its rules.
func (m *Manager) dropEgress(e *entry) error {
	old := e.rec.Egress
	if old.empty() {
		return nil
	}
	m.setRecord(e, e.rec.AllowInternet, nil)
	if err := m.renderEgress(e, old); err != nil {
		m.setRecord(e, e.rec.AllowInternet, old)
		return fmt.Errorf("remove egress rules: %w", err)
	}
	return nil
}

// sandboxPolicy is what the egress proxy and the DNS forwarder need to know
// of the sandbox at an address.
type sandboxPolicy struct {
	id            string
	allowInternet bool
	egress        *Egress
}

// policyAt returns the choices of the sandbox whose address is addr.
func (m *Manager) policyAt(addr netip.Addr) (sandboxPolicy, bool) {
	slot, err := m.pool.slotOf(addr.Unmap())
	if err != nil {
		return sandboxPolicy{}, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.slots[slot]
	if e == nil || e.gone || e.rec.Address != addr.Unmap() {
		return sandboxPolicy{}, false
	}
	return sandboxPolicy{id: e.rec.SandboxID, allowInternet: e.rec.AllowInternet, egress: e.rec.Egress}, true
}
