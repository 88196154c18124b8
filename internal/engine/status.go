package engine

import (
	"fmt"
	"net/netip"
	"time"
)

// Status is a sandbox as the engine reports it.
type Status struct {
	Spec    Spec
	State   State
	Address string
	Reason  string
}

func statusOf(r *record) Status {
	return Status{Spec: r.Spec, State: r.State, Address: r.Address, Reason: r.Reason}
}

// lookup returns the box of id with its operation lock held.
func (e *Engine) lookup(id string) (*box, error) {
	e.mu.Lock()
	b := e.boxes[id]
	e.mu.Unlock()
	if b == nil {
		return nil, fmt.Errorf("sandbox %s: %w", id, ErrNotFound)
	}
	b.op.Lock()
	e.mu.Lock()
	current := e.boxes[id] == b
	e.mu.Unlock()
	if !current { // killed while we waited
		b.op.Unlock()
		return nil, fmt.Errorf("sandbox %s: %w", id, ErrNotFound)
	}
	return b, nil
}

// Get reports one sandbox.
func (e *Engine) Get(id string) (Status, error) {
	b, err := e.lookup(id)
	if err != nil {
		return Status{}, err
	}
	defer b.op.Unlock()
	return statusOf(b.record()), nil
}

// List reports every sandbox on the node.
func (e *Engine) List() []Status {
	e.mu.Lock()
	boxes := make([]*box, 0, len(e.boxes))
	for _, b := range e.boxes {
		boxes = append(boxes, b)
	}
	e.mu.Unlock()
	out := make([]Status, 0, len(boxes))
	for _, b := range boxes {
		out = append(out, statusOf(b.record()))
	}
	return out
}

// record returns a copy of the box's current record.
func (b *box) record() *record {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := *b.rec
	return &r
}

// save stores r durably, then makes it the box's record. Call with b.op held.
func (b *box) save(r *record) error {
	if err := writeRecord(b.dir, r); err != nil {
		return err
	}
	b.mu.Lock()
	b.rec = r
	b.mu.Unlock()
	return nil
}

// Logs returns the sandbox's log lines at or after start, up to limit.
func (e *Engine) Logs(id string, start time.Time, limit int) ([]LogLine, error) {
	e.mu.Lock()
	b := e.boxes[id]
	e.mu.Unlock()
	if b == nil {
		return nil, fmt.Errorf("logs of sandbox %s: %w", id, ErrNotFound)
	}
	return b.log.read(start, limit)
}

// addrOf parses an endpoint's address for the record.
func addrOf(a netip.Addr) string { return a.String() }
