package controlplane

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
)

// LeaseStore is the part of the store that lets control-plane replicas on
// one database take turns; *store.DB implements it. A lease is held by one
// holder until it expires unless renewed (see store.DB.AcquireLease).
type LeaseStore interface {
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, name, holder string) error
	DeleteExpiredLeases(ctx context.Context) (int64, error)
}

// opLocks serializes operations per key (a sandbox ID, "build/<id>") across
// every control-plane replica on one store: a keyed mutex orders the callers
// of this process, and a store lease ("op/<key>"), renewed while it is held,
// keeps other replicas out. A replica that dies stops renewing, and its
// leases are free once they expire (after ttl).
//
// A holder that cannot renew in time (cut off from the database for longer
// than ttl) loses its lease while its operation may still run; the
// operation's writes are still compare-and-swaps on the sandbox's version, so
// the record stays consistent, and the loss is logged.
type opLocks struct {
	local  *keyedMutex
	leases LeaseStore
	holder string
	ttl    time.Duration
	log    *slog.Logger
}

// opLeasePrefix prefixes the lease names of operation locks.
const opLeasePrefix = "op/"

// Bounds of the wait between attempts at a lease another replica holds.
const (
	minLeaseWait = 5 * time.Millisecond
	maxLeaseWait = 250 * time.Millisecond
)

// releaseTimeout bounds the release of a lease at unlock.
const releaseTimeout = 10 * time.Second

// lock waits for key's lock and returns the function that releases it. It
// gives up with ctx's error when ctx ends first, and with the store's error
// when the store cannot be asked.
func (l *opLocks) lock(ctx context.Context, key string) (func(), error) {
	unlockLocal, err := l.local.lock(ctx, key)
	if err != nil {
		return nil, err
	}
	wait := minLeaseWait
	for {
		ok, err := l.leases.AcquireLease(ctx, opLeasePrefix+key, l.holder, l.ttl)
		if err != nil {
			unlockLocal()
			return nil, err
		}
		if ok {
			return l.hold(key, unlockLocal), nil
		}
		// Another replica runs an operation on key: try again, a random
		// while later, waiting longer each time.
		select {
		case <-time.After(wait/2 + rand.N(wait)):
		case <-ctx.Done():
			unlockLocal()
			return nil, ctx.Err()
		}
		wait = min(2*wait, maxLeaseWait)
	}
}

// tryLock takes key's lock only when nobody, in this process or another
// replica, holds it or waits for it here; ok is false when it is busy.
func (l *opLocks) tryLock(ctx context.Context, key string) (unlock func(), ok bool, err error) {
	unlockLocal, ok := l.local.tryLock(key)
	if !ok {
		return nil, false, nil
	}
	got, err := l.leases.AcquireLease(ctx, opLeasePrefix+key, l.holder, l.ttl)
	if err != nil || !got {
		unlockLocal()
		return nil, false, err
	}
	return l.hold(key, unlockLocal), true, nil
}

// hold keeps key's lease, renewing it at a third of its lifetime, until the
// returned function, which releases it and then the local lock.
func (l *opLocks) hold(key string, unlockLocal func()) func() {
	name := opLeasePrefix + key
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(l.ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), l.ttl/3)
			ok, err := l.leases.AcquireLease(ctx, name, l.holder, l.ttl)
			cancel()
			if err != nil || !ok {
				l.log.Error("renew the lock of an operation; another replica may take it when it expires",
					"key", key, "held", ok, "err", err)
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(stop)
			<-stopped
			ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
			defer cancel()
			if err := l.leases.ReleaseLease(ctx, name, l.holder); err != nil {
				l.log.Warn("release the lock of an operation; it is free when it expires", "key", key, "err", err)
			}
			unlockLocal()
		})
	}
}

// size is the number of keys held or waited for in this process (for tests).
func (l *opLocks) size() int { return l.local.size() }

// keyedMutex serializes work per key (a sandbox ID): callers holding the lock
// of one key run one at a time, callers of different keys do not wait for
// each other. Entries exist only while someone holds or waits for them.
type keyedMutex struct {
	mu      sync.Mutex
	entries map[string]*keyEntry
}

// keyEntry is one key's lock: a one-slot semaphore (so waiting can be
// abandoned when a context ends) and the number of holders plus waiters.
type keyEntry struct {
	sem  chan struct{}
	refs int
}

func newKeyedMutex() *keyedMutex {
	return &keyedMutex{entries: make(map[string]*keyEntry)}
}

// lock waits for key's lock and returns the function that releases it. It
// gives up with ctx's error when ctx ends first.
func (k *keyedMutex) lock(ctx context.Context, key string) (func(), error) {
	k.mu.Lock()
	e := k.entries[key]
	if e == nil {
		e = &keyEntry{sem: make(chan struct{}, 1)}
		k.entries[key] = e
	}
	e.refs++
	k.mu.Unlock()

	select {
	case e.sem <- struct{}{}:
		var once sync.Once
		return func() {
			once.Do(func() {
				<-e.sem
				k.release(key, e)
			})
		}, nil
	case <-ctx.Done():
		k.release(key, e)
		return nil, ctx.Err()
	}
}

// tryLock takes key's lock only when nobody holds it or waits for it, and
// returns the function that releases it; ok is false when the key is busy.
func (k *keyedMutex) tryLock(key string) (unlock func(), ok bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.entries[key] != nil {
		return nil, false
	}
	e := &keyEntry{sem: make(chan struct{}, 1), refs: 1}
	e.sem <- struct{}{}
	k.entries[key] = e
	var once sync.Once
	return func() {
		once.Do(func() {
			<-e.sem
			k.release(key, e)
		})
	}, true
}

// release drops one reference to e and forgets it when nobody uses it.
func (k *keyedMutex) release(key string, e *keyEntry) {
	k.mu.Lock()
	defer k.mu.Unlock()
	e.refs--
	if e.refs == 0 {
		delete(k.entries, key)
	}
}

// refs is the number of holders and waiters of key (for tests).
func (k *keyedMutex) refs(key string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	if e := k.entries[key]; e != nil {
		return e.refs
	}
	return 0
}

// size is the number of keys in use (for tests).
func (k *keyedMutex) size() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.entries)
}
