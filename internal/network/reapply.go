package network

import (
	"context"
	"errors"
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// Reapply puts the sandbox's address and default route back on eth0 inside its
// namespace. gVisor's --network=sandbox takes them off the interface when a sandbox
// starts, so every later start or restore in the same namespace needs this first.
// Addresses and routes already in place are left as they are.
func (m *Manager) Reapply(ctx context.Context, sandboxID string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("reapply network of %s: %w", sandboxID, err)
	}
	m.mu.Lock()
	e := m.entries[sandboxID]
	m.mu.Unlock()
	if e == nil {
		return fmt.Errorf("reapply network of %s: %w", sandboxID, ErrNotFound)
	}
	e.op.Lock()
	defer e.op.Unlock()
	if e.gone {
		return fmt.Errorf("reapply network of %s: %w", sandboxID, ErrNotFound)
	}
	rec := e.rec
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		err, restored := enterNetNS(m.netnsPath(&rec), func() error { return configureSandboxSide(&rec) })
		if restored {
			runtime.UnlockOSThread()
		}
		ch <- err
	}()
	if err := <-ch; err != nil {
		return fmt.Errorf("reapply network of %s: %w", sandboxID, err)
	}
	return nil
}

// configureSandboxSide sets eth0's address and the default route, tolerating both
// being there already. It runs inside the sandbox's namespace.
func configureSandboxSide(r *record) error {
	nl, err := openRTNL()
	if err != nil {
		return err
	}
	defer nl.Close()
	eth, err := nl.linkIndex(sandboxIface)
	if err != nil {
		return err
	}
	if err := nl.addAddr(eth, r.Address, r.PrefixLen); err != nil && !isExist(err) {
		return err
	}
	if err := nl.setLink(eth, true, nil); err != nil {
		return err
	}
	if err := nl.addDefaultRoute(r.Gateway, eth); err != nil && !isExist(err) {
		return err
	}
	return nil
}

// enterNetNS runs fn with the calling, locked, OS thread in the namespace at path. It
// reports whether the thread got back to its own namespace (else it must be dropped).
func enterNetNS(path string, fn func() error) (error, bool) {
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open current netns: %w", err), true
	}
	defer unix.Close(orig)
	target, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", path, err), true
	}
	defer unix.Close(target)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("enter netns %s: %w", path, err), true
	}
	ferr := fn()
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		return errors.Join(ferr, fmt.Errorf("return to host netns: %w", err)), false
	}
	return ferr, true
}
