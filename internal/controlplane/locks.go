package controlplane

import (
	"context"
	"sync"
)

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
