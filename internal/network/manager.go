package network

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"sync"
)

// sandboxPrefixLen is the size of every sandbox's network: a /30.
const sandboxPrefixLen = 30

// Options are the per-sandbox network choices.
type Options struct {
	// AllowInternet lets the sandbox open connections to public addresses
	// (through NAT). Private and link-local ranges stay blocked either way.
	AllowInternet bool
	// Egress narrows what AllowInternet opens to the sandbox's own rules; nil
	// means none. Without AllowInternet it has no effect.
	Egress *Egress
}

// Endpoint describes one sandbox's network.
type Endpoint struct {
	// SandboxID is the sandbox the network belongs to.
	SandboxID string
	// NetNSPath is the namespace's bind mount (/run/netns/<name>), for the
	// OCI spec's network namespace path.
	NetNSPath string
	// Address is the sandbox's address (on eth0 inside the namespace); the
	// host reaches the sandbox's ports there.
	Address netip.Addr
	// Gateway is the host side of the veth and the sandbox's default route.
	Gateway netip.Addr
	// PrefixLen is the length of the sandbox's network (30).
	PrefixLen int
	// HostVeth is the host-side veth's name.
	HostVeth string
	// AllowInternet reports whether egress to the internet is allowed.
	AllowInternet bool
	// Egress are the sandbox's egress rules, nil for none.
	Egress *Egress
}

// entry is one allocation held in memory.
type entry struct {
	op   sync.Mutex // serializes Setup, Teardown and the Set methods of the sandbox
	rec  record     // AllowInternet and Egress change under both op and Manager.mu
	slot int
	gone bool // under op: torn down and dropped from the Manager
}

// Manager owns the sandbox networks of one host. It is safe for concurrent
// use; operations on one sandbox are serialized.
type Manager struct {
	cfg    Config
	fw     *firewall
	nameRE *regexp.Regexp

	mu      sync.Mutex
	entries map[string]*entry // by sandbox ID
	names   map[string]string // link name -> sandbox ID
	slots   map[int]*entry    // by slot, i.e. by address
	pool    *pool
	proxy   *EgressProxy // the running egress proxy, told of rule changes

	// answers are the DNS answers sandboxes with domain rules were given,
	// which let their connections take the egress checker's kernel path.
	answers *answerBook

	// fwMu serializes changes of the egress chains, which are rendered from
	// every entry's rules.
	fwMu sync.Mutex

	// fault, when set by tests, is called before each build step and fails
	// the step with its error.
	fault func(step string) error
}

// NewManager installs the host-wide state idempotently (the iptables chains
// and the jumps into them, ip_forward with the guard that keeps the host from
// forwarding anything else it did not forward before, the shared /run/netns
// mount) and loads the allocations recorded in cfg.StateDir. Uninstall takes
// the host-wide state away again.
func NewManager(ctx context.Context, cfg Config) (*Manager, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m := &Manager{
		cfg:     cfg,
		fw:      newFirewall(cfg),
		nameRE:  linkNameRE(cfg.NamePrefix),
		entries: make(map[string]*entry),
		names:   make(map[string]string),
		slots:   make(map[int]*entry),
		pool:    newPool(cfg.Subnet),
		answers: newAnswerBook(),
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("create network state dir: %w", err)
	}
	if err := ensureNetNSDir(cfg.NetNSDir); err != nil {
		return nil, fmt.Errorf("prepare netns dir: %w", err)
	}
	recs, err := loadRecords(cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("load network allocations: %w", err)
	}
	for _, r := range recs {
		if err := m.adopt(r); err != nil {
			return nil, fmt.Errorf("load network allocation of %s: %w", r.SandboxID, err)
		}
	}
	// The chains come with every recorded sandbox's egress rules at once, so
	// that no sandbox that kept running is ever without its rules.
	if err := m.fw.install(ctx, m.egressRules()); err != nil {
		return nil, fmt.Errorf("install firewall: %w", err)
	}
	if err := m.fw.claimForwarding(ctx); err != nil {
		return nil, fmt.Errorf("install firewall: %w", err)
	}
	if err := m.syncGroups(); err != nil {
		return nil, fmt.Errorf("re-apply egress policy: %w", err)
	}
	return m, nil
}

// adopt validates a loaded record and takes its slot and name.
func (m *Manager) adopt(r *record) error {
	if err := validateSandboxID(r.SandboxID); err != nil {
		return err
	}
	slot, err := m.pool.slotOf(r.Address)
	if err != nil {
		return err
	}
	gw, _ := m.pool.addrs(slot)
	switch {
	case r.Gateway != gw || r.PrefixLen != sandboxPrefixLen:
		return fmt.Errorf("gateway %s/%d does not match address %s", r.Gateway, r.PrefixLen, r.Address)
	case !m.nameRE.MatchString(r.HostVeth) || r.NetNS != r.HostVeth:
		return fmt.Errorf("names %q/%q do not fit prefix %q", r.HostVeth, r.NetNS, m.cfg.NamePrefix)
	case m.pool.used[slot]:
		return fmt.Errorf("address %s allocated twice", r.Address)
	case m.names[r.HostVeth] != "":
		return fmt.Errorf("link name %s allocated twice", r.HostVeth)
	}
	if err := r.Egress.Validate(); err != nil {
		return err
	}
	if r.Egress.empty() {
		r.Egress = nil
	}
	m.pool.used[slot] = true
	m.names[r.HostVeth] = r.SandboxID
	e := &entry{rec: *r, slot: slot}
	m.entries[r.SandboxID] = e
	m.slots[slot] = e
	return nil
}

// syncGroups makes the egress group of existing veths match their records.
func (m *Manager) syncGroups() error {
	if len(m.entries) == 0 {
		return nil
	}
	nl, err := openRTNL()
	if err != nil {
		return err
	}
	defer nl.Close()
	for _, e := range m.entries {
		err := nl.setGroup(e.rec.HostVeth, groupFor(e.rec.AllowInternet))
		if err != nil && !errors.Is(err, errNoDevice) {
			return err
		}
	}
	return nil
}

func groupFor(allow bool) uint32 {
	if allow {
		return InternetGroup
	}
	return 0
}

// Setup gives a sandbox its network: the allocation is recorded durably
// first, then the namespace, veth pair, addresses, routes and egress group
// are created; on failure everything created is removed again. Setup of a
// sandbox that already has an allocation is idempotent: intact objects are
// kept (with opts applied), missing or half-built ones are rebuilt on the
// same address (e.g. after a host reboot).
func (m *Manager) Setup(ctx context.Context, sandboxID string, opts Options) (*Endpoint, error) {
	if err := validateSandboxID(sandboxID); err != nil {
		return nil, fmt.Errorf("setup network: %w", err)
	}
	if err := opts.Egress.Validate(); err != nil {
		return nil, fmt.Errorf("setup network for %s: %w", sandboxID, err)
	}
	if opts.Egress.empty() {
		opts.Egress = nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("setup network for %s: %w", sandboxID, err)
	}
	for {
		e, fresh, err := m.reserve(sandboxID, opts)
		if err != nil {
			return nil, fmt.Errorf("setup network for %s: %w", sandboxID, err)
		}
		e.op.Lock()
		if e.gone { // torn down meanwhile: allocate again
			e.op.Unlock()
			continue
		}
		ep, err := m.setupLocked(e, fresh, opts)
		e.op.Unlock()
		if err != nil {
			return nil, fmt.Errorf("setup network for %s: %w", sandboxID, err)
		}
		return ep, nil
	}
}

// reserve returns the sandbox's entry, allocating a slot and a name for a new
// one.
func (m *Manager) reserve(id string, opts Options) (e *entry, fresh bool, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.entries[id]; e != nil {
		return e, false, nil
	}
	slot, err := m.pool.take()
	if err != nil {
		return nil, false, err
	}
	name := linkName(m.cfg.NamePrefix, id, 0)
	for n := 1; m.names[name] != ""; n++ {
		name = linkName(m.cfg.NamePrefix, id, n)
	}
	gw, addr := m.pool.addrs(slot)
	e = &entry{slot: slot, rec: record{
		Version: recordVersion, SandboxID: id, Address: addr, Gateway: gw,
		PrefixLen: sandboxPrefixLen, HostVeth: name, NetNS: name,
		AllowInternet: opts.AllowInternet, Egress: opts.Egress,
	}}
	m.entries[id] = e
	m.names[name] = id
	m.slots[slot] = e
	return e, true, nil
}

// release drops an entry whose objects and record are gone. Call with e.op
// held.
func (m *Manager) release(e *entry) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.entries, e.rec.SandboxID)
	delete(m.names, e.rec.HostVeth)
	delete(m.slots, e.slot)
	m.pool.free(e.slot)
	m.answers.forget(e.rec.Address)
	e.gone = true
}

func (m *Manager) setupLocked(e *entry, fresh bool, opts Options) (*Endpoint, error) {
	if fresh {
		if err := writeRecord(m.cfg.StateDir, &e.rec); err != nil {
			m.release(e)
			return nil, fmt.Errorf("record allocation: %w", err)
		}
		// The rules are in place before the veth that they name exists.
		if err := m.fillEgress(e); err != nil {
			if rerr := removeRecord(m.cfg.StateDir, e.rec.SandboxID); rerr != nil {
				return nil, errors.Join(err, fmt.Errorf("remove record: %w", rerr))
			}
			m.release(e)
			return nil, err
		}
	} else {
		if m.intact(&e.rec) {
			if err := m.setOptionsLocked(e, opts); err != nil {
				return nil, err
			}
			return m.endpoint(e), nil
		}
		if err := m.destroy(&e.rec); err != nil {
			return nil, fmt.Errorf("clear half-built network: %w", err)
		}
		if err := m.setOptionsLocked(e, opts); err != nil {
			return nil, err
		}
	}
	err := m.build(&e.rec)
	if isExist(err) {
		// Objects with our name that no record covered (e.g. removed by
		// hand): clear them and try once more.
		if err = m.destroy(&e.rec); err == nil {
			err = m.build(&e.rec)
		}
	}
	if err != nil {
		if cerr := m.destroy(&e.rec); cerr != nil {
			// Keep the record so Teardown or Reconcile can finish the job.
			return nil, errors.Join(err, fmt.Errorf("clean up: %w", cerr))
		}
		if fresh {
			if ferr := m.dropEgress(e); ferr != nil {
				return nil, errors.Join(err, ferr)
			}
			if rerr := removeRecord(m.cfg.StateDir, e.rec.SandboxID); rerr != nil {
				return nil, errors.Join(err, fmt.Errorf("remove record: %w", rerr))
			}
			m.release(e)
		}
		return nil, err
	}
	return m.endpoint(e), nil
}
