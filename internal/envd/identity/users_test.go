package identity

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestUsersCacheFollowsTheFiles: a lookup answers from what it kept while the
// database files stay as they are, and reads them again once one changes or
// goes away.
func TestUsersCacheFollowsTheFiles(t *testing.T) {
	dir := t.TempDir()
	passwd, group := filepath.Join(dir, "passwd"), filepath.Join(dir, "group")
	must(t, os.WriteFile(passwd, []byte("root:x:0:0::/root:/bin/sh\n"), 0o644))
	must(t, os.WriteFile(group, []byte("root:x:0:\n"), 0o644))
	c := NewUsers()
	c.files = [2]string{passwd, group}
	real, err := c.Lookup("root")
	must(t, err)
	kept := real
	kept.Home = "/kept"
	c.mu.Lock()
	c.known["root"] = kept
	c.mu.Unlock()
	cases := []struct {
		name   string
		change func()
		home   string
	}{
		{"unchanged: what was kept", func() {}, "/kept"},
		{"passwd rewritten", func() { must(t, os.WriteFile(passwd, []byte("root:x:0:0::/root:/bin/sh\n\n"), 0o644)) }, real.Home},
		{"group replaced by a rename", func() {
			must(t, os.WriteFile(group+".new", []byte("root:x:0:\n"), 0o644))
			must(t, os.Rename(group+".new", group))
		}, real.Home},
		{"group gone", func() { must(t, os.Remove(group)) }, real.Home},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.mu.Lock()
			c.known["root"] = kept
			if tc.name == cases[0].name {
				c.stamp[0], _ = stampOf(passwd)
				c.stamp[1], _ = stampOf(group)
			}
			c.mu.Unlock()
			tc.change()
			u, err := c.Lookup("root")
			must(t, err)
			if u.Home != tc.home {
				t.Fatalf("home %q, want %q", u.Home, tc.home)
			}
		})
	}
	if _, err := c.Lookup("no-such-user-here"); !errors.Is(err, ErrUnknownUser) {
		t.Fatalf("unknown user: %v, want ErrUnknownUser", err)
	}
}

// otherUser is an account of the host's database that is not root, or skips.
func otherUser(t *testing.T) *user.User {
	t.Helper()
	for _, name := range []string{"nobody", "daemon"} {
		if u, err := user.Lookup(name); err == nil && u.Uid != "0" {
			return u
		}
	}
	t.Skip("the host has no nobody or daemon account")
	return nil
}

// TestUsersDoOnKeptThreads: calls of a resolved user run with its
// credentials on kept threads, concurrently; every other thread stays the
// daemon's; a call that breaks its thread's credentials is reported and that
// thread ends; idle threads end after their idle time.
func TestUsersDoOnKeptThreads(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: acting as another user takes CAP_SETUID")
	}
	start := daemonCreds(t)
	pw := otherUser(t)
	c := NewUsers()
	c.threads.idleFor = 200 * time.Millisecond
	u, err := c.Lookup(pw.Username)
	must(t, err)
	var wg sync.WaitGroup
	errc := make(chan error, 100)
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- u.Do(func() error {
				if got := unix.Geteuid(); got != int(u.UID) {
					return fmt.Errorf("ran as %d, want %d", got, u.UID)
				}
				time.Sleep(time.Millisecond)
				if got := unix.Getegid(); got != int(u.GID) {
					return fmt.Errorf("ran with gid %d after a sleep, want %d", got, u.GID)
				}
				return nil
			})
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Threads past the pool's bound end as their calls return.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		n, other := kept(t, u, start)
		if other != "" {
			t.Fatal(other)
		}
		if n >= 1 && n <= maxIdleThreads {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d threads kept for %s, want 1..%d", n, u.Name, maxIdleThreads)
		}
	}
	err = u.Do(func() error {
		_, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(u.UID), uintptr(u.UID), uintptr(u.UID))
		if e != 0 {
			return e
		}
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "changed the thread's credentials") {
		t.Fatalf("Do that broke its thread: %v, want the change reported", err)
	}
	must(t, u.Do(func() error {
		if unix.Geteuid() != int(u.UID) {
			return errors.New("not the user after a broken thread")
		}
		return nil
	}))
	// The broken thread ends just after its call returns; the others after
	// their idle time.
	deadline := time.Now().Add(10 * time.Second)
	for n, other := kept(t, u, start); n > 0 || other != ""; n, other = kept(t, u, start) {
		if time.Now().After(deadline) {
			t.Fatalf("%d threads still kept for %s after their idle time; %s", n, u.Name, other)
		}
		time.Sleep(50 * time.Millisecond)
	}
	root, err := c.Lookup("root")
	must(t, err)
	must(t, root.Do(func() error {
		if unix.Geteuid() != 0 {
			return syscall.EPERM
		}
		return nil
	}))
}

// kept counts the threads holding u's credentials and names a thread that
// holds something that is neither u's nor the daemon's, if there is one.
func kept(t *testing.T, u User, daemon string) (int, string) {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	must(t, err)
	uid := strconv.FormatUint(uint64(u.UID), 10)
	n, other := 0, ""
	for _, task := range tasks {
		b, err := os.ReadFile(filepath.Join("/proc/self/task", task.Name(), "status"))
		if err != nil {
			continue
		}
		got := credLines(string(b))
		switch {
		case got == daemon:
		case strings.HasPrefix(got, "Uid: 0 "+uid+" 0 "+uid+";"):
			n++
		default:
			other = fmt.Sprintf("thread %s (process %d) holds %q", task.Name(), os.Getpid(), got)
		}
	}
	return n, other
}
