package network

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// nsfsMagic is the statfs type of a bind-mounted namespace file.
const nsfsMagic = 0x6e736673

// newNS is a freshly created network namespace, bind-mounted at its path.
type newNS struct {
	fd   int   // open namespace file, for IFLA_NET_NS_FD
	rtnl *rtnl // netlink socket inside the namespace
}

func (n *newNS) Close() {
	if n.rtnl != nil {
		n.rtnl.Close()
	}
	unix.Close(n.fd)
}

// ensureNetNSDir creates dir and makes it a shared mount point, as iproute2
// does, so namespaces mounted later are visible in mount namespaces that were
// copied from this one.
func ensureNetNSDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	err := unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if errors.Is(err, unix.EINVAL) { // not a mount point yet
		if err := unix.Mount(dir, dir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind mount %s: %w", dir, err)
		}
		err = unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	}
	if err != nil {
		return fmt.Errorf("make %s shared: %w", dir, err)
	}
	return nil
}

// createNetNS creates a network namespace bind-mounted at path, with IPv6
// disabled, and returns handles to it. The work runs on a dedicated locked
// OS thread; if that thread cannot return to its original namespace it is
// discarded rather than reused.
func createNetNS(path string) (*newNS, error) {
	type result struct {
		ns  *newNS
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		ns, restored, err := createNetNSLocked(path)
		if restored {
			runtime.UnlockOSThread()
		}
		ch <- result{ns, err}
	}()
	r := <-ch
	return r.ns, r.err
}

func createNetNSLocked(path string) (ns *newNS, restored bool, err error) {
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, true, fmt.Errorf("open current netns: %w", err)
	}
	defer unix.Close(orig)
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return nil, true, fmt.Errorf("unshare netns: %w", err)
	}
	ns, err = populateNetNS(path)
	if serr := unix.Setns(orig, unix.CLONE_NEWNET); serr != nil {
		if ns != nil {
			ns.Close()
		}
		return nil, false, fmt.Errorf("return to host netns: %w", serr)
	}
	return ns, true, err
}

// populateNetNS runs inside the new namespace: it pins the namespace at path,
// disables IPv6 and opens the handles.
func populateNetNS(path string) (*newNS, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o444)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	unix.Close(fd)
	if err := unix.Mount("/proc/thread-self/ns/net", path, "none", unix.MS_BIND, ""); err != nil {
		return nil, fmt.Errorf("bind mount netns at %s: %w", path, err)
	}
	for _, dev := range []string{"all", "default"} {
		p := filepath.Join("/proc/sys/net/ipv6/conf", dev, "disable_ipv6")
		if err := writeSysctl(p, "1"); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("disable IPv6 in netns: %w", err)
		}
	}
	nsfd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open new netns: %w", err)
	}
	nl, err := openRTNL()
	if err != nil {
		unix.Close(nsfd)
		return nil, err
	}
	return &newNS{fd: nsfd, rtnl: nl}, nil
}

// removeNetNS unmounts and removes a namespace file; one that is missing or
// not mounted is not an error.
func removeNetNS(path string) error {
	err := unix.Unmount(path, unix.MNT_DETACH)
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

// isNetNSMount reports whether path is a mounted namespace file.
func isNetNSMount(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == nsfsMagic
}
