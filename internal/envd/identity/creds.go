package identity

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Do runs fn with u's credentials, so that the kernel decides every permission of
// the file operations fn makes, at the moment it makes them: fn runs on an OS
// thread of its own whose effective uid and gid and supplementary groups are
// u's. The real and saved ids stay the daemon's, so the thread becomes the
// daemon again afterwards; a thread whose credentials cannot be restored is
// never unlocked, so no goroutine runs on it again (the Go runtime ends it; Do
// never acts on the main thread, which the runtime would park for good instead).
//
// fn must make its file operations on the goroutine Do runs it on (a goroutine
// it starts has the daemon's credentials), and may keep what it opens: an open
// file stays usable with the daemon's credentials. When the daemon already runs
// as u (root for root), fn runs as it is. A panic in fn is raised again in the
// caller once the thread's credentials are back.
//
// A user resolved by Users runs fn on a thread its Threads pool keeps with u's
// credentials for good (never with anyone else's, and never unlocked, so no
// other goroutine runs on it); fn must then leave the thread's credentials as
// they are, or the thread ends and Do reports it.
func (u User) Do(fn func() error) error {
	if os.Geteuid() == int(u.UID) && os.Getegid() == int(u.GID) {
		return fn()
	}
	if u.threads != nil {
		return u.threads.do(u, fn)
	}
	done := make(chan doResult, 1)
	go onLockedThread(func() { u.actLocked(fn, done) })
	res := <-done
	if res.panicked {
		panic(res.panicVal)
	}
	return res.err
}

// creds are one thread's effective ids and supplementary groups.
type creds struct {
	euid, egid uint32
	groups     []uint32
}

// maxGroups bounds the supplementary groups of a thread (NGROUPS_MAX).
const maxGroups = 65536

// threadCreds reads the calling thread's credentials.
func threadCreds() (creds, error) {
	var c creds
	var r, s uint32
	if _, _, e := unix.RawSyscall(unix.SYS_GETRESUID, uintptr(unsafe.Pointer(&r)), uintptr(unsafe.Pointer(&c.euid)), uintptr(unsafe.Pointer(&s))); e != 0 {
		return creds{}, fmt.Errorf("getresuid: %w", e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_GETRESGID, uintptr(unsafe.Pointer(&r)), uintptr(unsafe.Pointer(&c.egid)), uintptr(unsafe.Pointer(&s))); e != 0 {
		return creds{}, fmt.Errorf("getresgid: %w", e)
	}
	n, _, e := unix.RawSyscall(unix.SYS_GETGROUPS, 0, 0, 0)
	if e != 0 {
		return creds{}, fmt.Errorf("getgroups: %w", e)
	}
	if n > 0 {
		c.groups = make([]uint32, n)
		m, _, e := unix.RawSyscall(unix.SYS_GETGROUPS, n, uintptr(unsafe.Pointer(&c.groups[0])), 0)
		if e != 0 {
			return creds{}, fmt.Errorf("getgroups: %w", e)
		}
		c.groups = c.groups[:m]
	}
	return c, nil
}

// become gives the calling thread u's groups, then gid, then uid (the last step
// gives up the capabilities the first two need).
func (u User) become() error {
	groups := u.Groups
	if len(groups) == 0 {
		groups = []uint32{u.GID}
	}
	if len(groups) > maxGroups {
		return fmt.Errorf("user %q is in %d groups, more than %d", u.Name, len(groups), maxGroups)
	}
	if err := setThreadGroups(groups); err != nil {
		return err
	}
	if err := setThreadIDs(unix.SYS_SETRESGID, u.GID); err != nil {
		return fmt.Errorf("setresgid %d: %w", u.GID, err)
	}
	if err := setThreadIDs(unix.SYS_SETRESUID, u.UID); err != nil {
		return fmt.Errorf("setresuid %d: %w", u.UID, err)
	}
	return nil
}

// restore gives the calling thread c again, in the reverse order of become, and
// verifies it holds them.
func (c creds) restore() error {
	if err := setThreadIDs(unix.SYS_SETRESUID, c.euid); err != nil {
		return fmt.Errorf("restore uid %d: %w", c.euid, err)
	}
	if err := setThreadIDs(unix.SYS_SETRESGID, c.egid); err != nil {
		return fmt.Errorf("restore gid %d: %w", c.egid, err)
	}
	if err := setThreadGroups(c.groups); err != nil {
		return fmt.Errorf("restore groups: %w", err)
	}
	now, err := threadCreds()
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if now.euid != c.euid || now.egid != c.egid || !slices.Equal(now.groups, c.groups) {
		return fmt.Errorf("restore: the thread holds %d:%d %v, want %d:%d %v", now.euid, now.egid, now.groups, c.euid, c.egid, c.groups)
	}
	return nil
}

// setThreadIDs sets the effective id of the calling thread alone with the raw
// setresuid or setresgid call (the syscall package's wrappers change every
// thread of the process), leaving the real and saved ids as they are.
func setThreadIDs(call uintptr, id uint32) error {
	const keep = ^uintptr(0) // -1: leave unchanged
	if _, _, e := unix.RawSyscall(call, keep, uintptr(id), keep); e != 0 {
		return e
	}
	return nil
}

// setThreadGroups sets the supplementary groups of the calling thread alone.
func setThreadGroups(groups []uint32) error {
	var p unsafe.Pointer
	if len(groups) > 0 {
		p = unsafe.Pointer(&groups[0])
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(groups)), uintptr(p), 0); e != 0 {
		return fmt.Errorf("setgroups: %w", e)
	}
	return nil
}

// doResult is what Do's thread hands back.
type doResult struct {
	err      error
	panicked bool
	panicVal any
}

// actLocked runs fn as u on the calling goroutine, which is locked to a thread
// that is not the main one (onLockedThread), and sends the result on done. It unlocks the
// thread once its credentials are back; a thread whose credentials cannot be
// restored stays locked, and the goroutine's end takes it away.
func (u User) actLocked(fn func() error, done chan<- doResult) {
	var res doResult
	defer func() { done <- res }()
	saved, err := threadCreds()
	if err != nil {
		res.err = fmt.Errorf("act as user %q: %w", u.Name, err)
		runtime.UnlockOSThread()
		return
	}
	if err := u.become(); err != nil {
		res.err = fmt.Errorf("act as user %q: %w", u.Name, err)
	} else {
		func() {
			defer func() {
				if p := recover(); p != nil {
					res.panicked, res.panicVal = true, p
				}
			}()
			res.err = fn()
		}()
	}
	if err := saved.restore(); err != nil {
		res.err = errors.Join(res.err, fmt.Errorf("act as user %q: %w", u.Name, err))
		return
	}
	runtime.UnlockOSThread()
}
