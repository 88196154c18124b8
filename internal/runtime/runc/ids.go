package runc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"lelantos.dev/lelantos/internal/runtime/oci"
)

// The host ids of runc sandboxes. Each sandbox gets a range of its own, so root of
// one sandbox is a different, unprivileged host user from root of every other and
// from every host user: a process that got out of its namespaces could touch no
// other sandbox's files or processes. The default ranges start at host id
// 1,000,000,000, far above the ranges distributions hand out in /etc/subuid
// (100000 and up, 65536 per user), and end below 2^31 for tools that take ids as
// signed.
const (
	// DefaultIDBase is the first host id of the first range.
	DefaultIDBase = 1_000_000_000
	// DefaultIDRanges is how many ranges there are: how many runc sandboxes a node
	// can hold at once.
	DefaultIDRanges = 4096
	// IDRangeSize is the number of ids in a range: ids 0..65535 inside.
	IDRangeSize = 65536
)

// leasePrefix starts the names of the files in the state directory that say which
// sandbox holds which range; runc takes only directories there for containers.
const leasePrefix = "idrange-"

// ErrNoIDRange is returned when every id range is held by a sandbox.
var ErrNoIDRange = errors.New("every runc id range is in use")

// idLeases hands out id ranges. A lease is a file created exclusively in the state
// directory, so ranges survive a node restart with the sandboxes that hold them.
type idLeases struct {
	dir    string
	base   uint32
	ranges int
	// mu guards starting, the sandboxes whose lease is taken but which runc may not
	// list yet: reclaiming must not take their ranges.
	mu       sync.Mutex
	starting map[string]bool
}

// rangeOf is the id range of slot n.
func (l *idLeases) rangeOf(n int) oci.IDRange {
	return oci.IDRange{Host: l.base + uint32(n)*IDRangeSize, Size: IDRangeSize}
}

func (l *idLeases) path(n int) string {
	return filepath.Join(l.dir, leasePrefix+strconv.Itoa(n))
}

// acquire leases a free range to sandbox id. When none is free it reclaims the
// leases of sandboxes runc no longer holds (live lists the ones it does) and tries
// once more. Release or done must follow.
func (l *idLeases) acquire(ctx context.Context, id string, live func(context.Context) (map[string]bool, error)) (oci.IDRange, error) {
	l.mu.Lock()
	l.starting[id] = true
	l.mu.Unlock()
	// The lease of a sandbox that runc lost, or that was never released, stays until
	// every range is taken; then those of sandboxes runc does not hold are reclaimed.
	for attempt := 0; ; attempt++ {
		for n := range l.ranges {
			f, err := os.OpenFile(l.path(n), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
			if errors.Is(err, os.ErrExist) {
				continue
			}
			if err != nil {
				l.done(id)
				return oci.IDRange{}, fmt.Errorf("lease id range: %w", err)
			}
			_, werr := f.WriteString(id)
			if err := errors.Join(werr, f.Close()); err != nil {
				_ = os.Remove(l.path(n))
				l.done(id)
				return oci.IDRange{}, fmt.Errorf("lease id range: %w", err)
			}
			return l.rangeOf(n), nil
		}
		if attempt > 0 {
			l.done(id)
			return oci.IDRange{}, fmt.Errorf("lease id range for %s: %w (%d ranges)", id, ErrNoIDRange, l.ranges)
		}
		if err := l.reclaim(ctx, live); err != nil {
			l.done(id)
			return oci.IDRange{}, err
		}
	}
}

// done says sandbox id is no longer starting: runc lists it, or it failed.
func (l *idLeases) done(id string) {
	l.mu.Lock()
	delete(l.starting, id)
	l.mu.Unlock()
}

// release frees the ranges sandbox id holds, if any.
func (l *idLeases) release(id string) error {
	holders, err := l.holders()
	if err != nil {
		return err
	}
	var errs []error
	for n, h := range holders {
		if h != id {
			continue
		}
		if err := os.Remove(l.path(n)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("release id range of %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// holders maps each leased slot to the sandbox holding it.
func (l *idLeases) holders() (map[int]string, error) {
	ents, err := os.ReadDir(l.dir)
	if err != nil {
		return nil, fmt.Errorf("read id leases: %w", err)
	}
	out := map[int]string{}
	for _, e := range ents {
		s, ok := strings.CutPrefix(e.Name(), leasePrefix)
		if !ok || e.IsDir() {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(l.dir, e.Name()))
		if err != nil {
			continue
		}
		out[n] = string(b)
	}
	return out, nil
}

// reclaim removes the leases of sandboxes that are neither starting nor held by
// runc. It holds mu throughout, so no sandbox can begin or finish starting while it
// decides.
func (l *idLeases) reclaim(ctx context.Context, live func(context.Context) (map[string]bool, error)) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	alive, err := live(ctx)
	if err != nil {
		return fmt.Errorf("reclaim id ranges: %w", err)
	}
	holders, err := l.holders()
	if err != nil {
		return err
	}
	for n, id := range holders {
		if !alive[id] && !l.starting[id] {
			_ = os.Remove(l.path(n))
		}
	}
	return nil
}
