package identity

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Thread keeping. Becoming a user on a fresh locked thread and becoming the
// daemon again costs a dozen system calls and a switch of threads; under gVisor
// each of those is a trip through its kernel, which made Do the largest part of a
// small file read. A Threads pool keeps threads that hold one user's credentials
// for good and hands fn to one of them instead: fn then costs two switches of
// goroutines and a check of the thread's credentials.
const (
	// threadIdle is how long a kept thread waits for work before it ends.
	threadIdle = 30 * time.Second
	// maxIdleThreads bounds the idle threads kept per set of credentials.
	maxIdleThreads = 4
)

// Threads keeps OS threads that hold a user's credentials, for Do of users it
// resolved (Users). The zero value is not usable; call NewThreads.
type Threads struct {
	idleFor time.Duration // how long a kept thread waits for work
	mu      sync.Mutex
	idle    map[string][]*credThread
}

// NewThreads returns an empty pool.
func NewThreads() *Threads {
	return &Threads{idleFor: threadIdle, idle: map[string][]*credThread{}}
}

// credThread is one kept thread: a goroutine locked to it that never unlocks, so
// no other goroutine ever runs with its credentials; when the goroutine ends, the
// Go runtime ends the thread.
type credThread struct {
	key  string
	jobs chan func() result
	out  chan result
}

// result is what fn gave on a thread.
type result struct {
	err      error
	panicked bool
	panicVal any
	broken   bool // the thread no longer holds the credentials it was made with
}

// credKey names a set of credentials: a thread of one key serves only calls of
// users with exactly those ids and groups.
func credKey(u User) string {
	var b strings.Builder
	b.WriteString(strconv.FormatUint(uint64(u.UID), 10))
	b.WriteByte(':')
	b.WriteString(strconv.FormatUint(uint64(u.GID), 10))
	for _, g := range u.Groups {
		b.WriteByte(',')
		b.WriteString(strconv.FormatUint(uint64(g), 10))
	}
	return b.String()
}

// do runs fn on a kept thread holding u's credentials, starting one if none is
// idle.
func (p *Threads) do(u User, fn func() error) error {
	key := credKey(u)
	t := p.take(key)
	if t == nil {
		var err error
		if t, err = p.start(u, key); err != nil {
			return err
		}
	}
	t.jobs <- func() result { return runFn(fn) }
	res := <-t.out
	if !res.broken {
		p.put(t)
	}
	if res.panicked {
		panic(res.panicVal)
	}
	return res.err
}

// runFn calls fn, turning a panic into a result.
func runFn(fn func() error) (res result) {
	defer func() {
		if v := recover(); v != nil {
			res.panicked, res.panicVal = true, v
		}
	}()
	res.err = fn()
	return res
}

// take removes an idle thread of key from the pool, or returns nil.
func (p *Threads) take(key string) *credThread {
	p.mu.Lock()
	defer p.mu.Unlock()
	idle := p.idle[key]
	if len(idle) == 0 {
		return nil
	}
	t := idle[len(idle)-1]
	p.idle[key] = idle[:len(idle)-1]
	return t
}

// put makes t idle again; a thread beyond the pool's bound ends.
func (p *Threads) put(t *credThread) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.idle[t.key]) >= maxIdleThreads {
		close(t.jobs)
		return
	}
	p.idle[t.key] = append(p.idle[t.key], t)
}

// retire removes idle thread t from the pool, reporting false when a call took
// it meanwhile (its work is then on the way).
func (p *Threads) retire(t *credThread) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	idle := p.idle[t.key]
	i := slices.Index(idle, t)
	if i < 0 {
		return false
	}
	p.idle[t.key] = slices.Delete(idle, i, i+1)
	if len(p.idle[t.key]) == 0 {
		delete(p.idle, t.key)
	}
	return true
}

// start makes a thread that holds u's credentials from now on.
func (p *Threads) start(u User, key string) (*credThread, error) {
	t := &credThread{key: key, jobs: make(chan func() result), out: make(chan result, 1)}
	ready := make(chan error, 1)
	go p.keep(t, u, ready)
	if err := <-ready; err != nil {
		return nil, fmt.Errorf("act as user %q: %w", u.Name, err)
	}
	return t, nil
}

// keep serves t's jobs on a thread locked for good to it (see onLockedThread):
// the thread ends with the goroutine.
func (p *Threads) keep(t *credThread, u User, ready chan<- error) {
	onLockedThread(func() { p.serve(t, u, ready) })
}

// onLockedThread runs fn on a goroutine locked to its thread, which fn owns:
// it unlocks the thread when the thread may serve others again, or leaves it
// locked so that the thread ends with the goroutine. The Go runtime does not
// end the process's main thread when a locked goroutine ends there: it parks
// it forever, still holding whatever credentials it had. So on the main
// thread fn runs on another goroutine, which then runs on another thread, and
// the main thread is given back untouched.
func onLockedThread(fn func()) {
	runtime.LockOSThread()
	if unix.Gettid() != unix.Getpid() {
		fn()
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		fn()
	}()
	<-done
	runtime.UnlockOSThread()
}

// serve gives the calling locked thread u's credentials and runs t's jobs on it
// until t is closed, its idle time passes or a job changes its credentials.
func (p *Threads) serve(t *credThread, u User, ready chan<- error) {
	want, err := becomeChecked(u)
	ready <- err
	if err != nil {
		return
	}
	idle := time.NewTimer(p.idleFor)
	defer idle.Stop()
	for {
		select {
		case job, ok := <-t.jobs:
			if !ok {
				return
			}
			res := job()
			if now, err := fullCreds(); err != nil || !sameFull(now, want) {
				res.broken = true
				res.err = errors.Join(res.err, fmt.Errorf("act as user %q: the call changed the thread's credentials", u.Name))
			}
			t.out <- res
			if res.broken {
				return
			}
			idle.Reset(p.idleFor)
		case <-idle.C:
			if p.retire(t) {
				return
			}
			idle.Reset(p.idleFor) // taken meanwhile: its work comes next
		}
	}
}

// allCreds are a thread's real, effective and saved ids and its groups.
type allCreds struct {
	uids, gids [3]uint32
	groups     []uint32
}

// fullCreds reads the calling thread's allCreds.
func fullCreds() (allCreds, error) {
	var c allCreds
	if _, _, e := unix.RawSyscall(unix.SYS_GETRESUID, uintptr(unsafe.Pointer(&c.uids[0])), uintptr(unsafe.Pointer(&c.uids[1])), uintptr(unsafe.Pointer(&c.uids[2]))); e != 0 {
		return allCreds{}, fmt.Errorf("getresuid: %w", e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_GETRESGID, uintptr(unsafe.Pointer(&c.gids[0])), uintptr(unsafe.Pointer(&c.gids[1])), uintptr(unsafe.Pointer(&c.gids[2]))); e != 0 {
		return allCreds{}, fmt.Errorf("getresgid: %w", e)
	}
	t, err := threadCreds()
	if err != nil {
		return allCreds{}, err
	}
	c.groups = t.groups
	return c, nil
}

// becomeChecked gives the calling thread u's credentials and returns them as the
// thread reads them back.
func becomeChecked(u User) (allCreds, error) {
	if err := u.become(); err != nil {
		return allCreds{}, err
	}
	now, err := fullCreds()
	if err != nil {
		return allCreds{}, err
	}
	groups := u.Groups
	if len(groups) == 0 {
		groups = []uint32{u.GID}
	}
	if now.uids[1] != u.UID || now.gids[1] != u.GID || !sameGroups(now.groups, groups) {
		return allCreds{}, fmt.Errorf("the thread holds %d:%d %v, want %d:%d %v", now.uids[1], now.gids[1], now.groups, u.UID, u.GID, groups)
	}
	return now, nil
}

// sameFull reports whether a and b are the same ids and groups.
func sameFull(a, b allCreds) bool {
	return a.uids == b.uids && a.gids == b.gids && slices.Equal(a.groups, b.groups)
}

// sameGroups compares group lists as sets (the kernel may sort them).
func sameGroups(a, b []uint32) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}
