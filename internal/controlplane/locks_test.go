package controlplane

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestKeyedMutex(t *testing.T) {
	k := newKeyedMutex()
	var active, maxActive atomic.Int32
	var other atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			unlock, err := k.lock(context.Background(), "a")
			if err != nil {
				t.Error(err)
				return
			}
			n := active.Add(1)
			for {
				m := maxActive.Load()
				if n <= m || maxActive.CompareAndSwap(m, n) {
					break
				}
			}
			time.Sleep(time.Millisecond)
			active.Add(-1)
			unlock()
			unlock() // a second call is harmless
		})
	}
	// Another key is not blocked by "a".
	wg.Go(func() {
		unlock, err := k.lock(context.Background(), "b")
		if err == nil {
			other.Add(1)
			unlock()
		}
	})
	wg.Wait()
	if maxActive.Load() != 1 {
		t.Errorf("%d holders of one key at once", maxActive.Load())
	}
	if other.Load() != 1 {
		t.Errorf("other key not locked")
	}

	unlock, _ := k.lock(context.Background(), "a")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := k.lock(ctx, "a"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiting on a held key with a deadline: %v", err)
	}
	unlock()
	if k.size() != 0 {
		t.Errorf("%d keys left", k.size())
	}
}

func TestKeyedMutexTryLock(t *testing.T) {
	k := newKeyedMutex()
	unlock, ok := k.tryLock("a")
	if !ok {
		t.Fatal("tryLock of a free key failed")
	}
	if _, ok := k.tryLock("a"); ok {
		t.Error("tryLock of a held key succeeded")
	}
	if u, ok := k.tryLock("b"); !ok {
		t.Error("tryLock of another key failed")
	} else {
		u()
	}
	// A waiter blocks on the tryLock holder and then holds the key itself.
	got := make(chan func())
	go func() {
		u, err := k.lock(context.Background(), "a")
		if err != nil {
			t.Error(err)
		}
		got <- u
	}()
	for k.refs("a") < 2 {
		time.Sleep(time.Millisecond)
	}
	unlock()
	unlock() // a second call is harmless
	waiter := <-got
	if _, ok := k.tryLock("a"); ok {
		t.Error("tryLock succeeded while the waiter holds the key")
	}
	waiter()
	if u, ok := k.tryLock("a"); !ok {
		t.Error("tryLock after every holder left failed")
	} else {
		u()
	}
	if k.size() != 0 {
		t.Errorf("%d keys left", k.size())
	}
}
