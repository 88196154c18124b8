package controlplane

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strconv"
	"sync"
	"time"
)

// backgroundLease is the store lease under which one replica of the control
// plane runs the background duties for all: the reaper (timeouts and the
// retention of paused sandboxes), the metrics sampler and the pruning of
// samples and ended records, the sweep of ended builds, and the repair of
// stuck sandboxes.
const backgroundLease = "background"

// replicaID names this Service among the control-plane replicas sharing its
// store: the host, the process and a random part (two Services of one
// process are two replicas).
func replicaID() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return host + "/" + strconv.Itoa(os.Getpid()) + "/" + hex.EncodeToString(b)
}

// leaseKeeper is a store lease a Service tries to hold for as long as its
// Run lasts: what runs under it gets a context that ends when the lease is
// lost.
type leaseKeeper struct {
	mu     sync.Mutex
	held   context.Context // nil while another replica holds the lease
	cancel context.CancelFunc
}

// current is the context of the present holding, or nil when the lease is
// not held.
func (k *leaseKeeper) current() context.Context {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.held
}

// take records that the lease is held, as a context under parent; it reports
// whether it was not held before.
func (k *leaseKeeper) take(parent context.Context) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.held != nil {
		return false
	}
	k.held, k.cancel = context.WithCancel(parent)
	return true
}

// drop records that the lease is no longer held, ending its context; it
// reports whether it was held.
func (k *leaseKeeper) drop() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.held == nil {
		return false
	}
	k.cancel()
	k.held, k.cancel = nil, nil
	return true
}

// under returns fn made to run only while k is held, with the holding's
// context.
func (k *leaseKeeper) under(fn func(context.Context)) func(context.Context) {
	return func(context.Context) {
		if ctx := k.current(); ctx != nil {
			fn(ctx)
		}
	}
}

// keepLease holds store lease name in k until ctx ends: it takes the lease
// when it is free, renews it at a third of LeaseTTL, lets it go when another
// replica has it or it could not be renewed within LeaseTTL, and releases it
// at the end, so that another replica takes over at once.
func (s *Service) keepLease(ctx context.Context, name string, k *leaseKeeper) {
	ttl := s.cfg.LeaseTTL
	var renewed time.Time // of the present holding
	for {
		ok, err := s.store.AcquireLease(ctx, name, s.replica, ttl)
		switch {
		case err == nil && ok:
			renewed = time.Now()
			if k.take(ctx) {
				s.log.Info("this replica runs the background duties", "lease", name, "replica", s.replica)
			}
		case err == nil:
			if k.drop() {
				s.log.Warn("another replica took the background duties", "lease", name)
			}
		case ctx.Err() == nil:
			s.log.Warn("renew the background lease", "lease", name, "err", err)
			if time.Since(renewed) > ttl*2/3 && k.drop() {
				s.log.Error("the background lease may have expired: this replica stops its duties", "lease", name)
			}
		}
		select {
		case <-ctx.Done():
			if k.drop() {
				rctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
				if err := s.store.ReleaseLease(rctx, name, s.replica); err != nil {
					s.log.Warn("release the background lease; it is free when it expires", "lease", name, "err", err)
				}
				cancel()
			}
			return
		case <-time.After(ttl / 3):
		}
	}
}
