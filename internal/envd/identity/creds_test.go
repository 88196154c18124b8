package identity

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// threadsAll reports the first thread of the process whose ids or groups are
// not want ("" when all hold them). The main thread is skipped when skipMain is
// set: the Go runtime never ends it, it parks it for good instead.
func threadsAll(t *testing.T, want string, skipMain bool) string {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		if skipMain && task.Name() == strconv.Itoa(os.Getpid()) {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc/self/task", task.Name(), "status"))
		if err != nil {
			continue // the thread ended meanwhile
		}
		if got := credLines(string(b)); got != want {
			return fmt.Sprintf("thread %s holds %q, want %q", task.Name(), got, want)
		}
	}
	return ""
}

// daemonCreds returns the credential lines of the calling thread, the daemon's.
func daemonCreds(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/thread-self/status")
	must(t, err)
	return credLines(string(b))
}

// credLines returns the Uid, Gid and Groups lines of a status file.
func credLines(status string) string {
	var out []string
	for _, line := range strings.Split(status, "\n") {
		if strings.HasPrefix(line, "Uid:") || strings.HasPrefix(line, "Gid:") || strings.HasPrefix(line, "Groups:") {
			out = append(out, strings.Join(strings.Fields(line), " "))
		}
	}
	return strings.Join(out, "; ")
}

func TestDo(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: acting as another user takes CAP_SETUID")
	}
	start := daemonCreds(t)
	dir := t.TempDir()
	for d := dir; d != "/"; d = filepath.Dir(d) {
		must(t, os.Chmod(d, 0o755))
	}
	secret := filepath.Join(dir, "secret")
	must(t, os.WriteFile(secret, []byte("s"), 0o600))
	grouped := filepath.Join(dir, "grouped")
	must(t, os.WriteFile(grouped, []byte("g"), 0o640))
	must(t, os.Chown(grouped, 0, 4242))
	open := filepath.Join(dir, "open")
	must(t, os.Mkdir(open, 0o777))
	must(t, os.Chmod(open, 0o777))
	nobody := User{Name: "nobody", UID: 65534, GID: 65534, Groups: []uint32{65534}}
	withGroup := nobody
	withGroup.Groups = []uint32{65534, 4242}
	root := User{Name: "root"}
	read := func(p string) func() error {
		return func() error {
			f, err := os.Open(p)
			if err == nil {
				f.Close()
			}
			return err
		}
	}
	cases := []struct {
		name string
		user User
		fn   func() error
		want error
		then func(t *testing.T)
	}{
		{"a root file is closed to the user", nobody, read(secret), syscall.EACCES, nil},
		{"a supplementary group opens a group file", withGroup, read(grouped), nil, nil},
		{"without the group it stays closed", nobody, read(grouped), syscall.EACCES, nil},
		{"root acts as root", root, read(secret), nil, nil},
		{"the thread holds the user's ids", withGroup, func() error {
			groups, err := unix.Getgroups()
			if unix.Geteuid() != 65534 || unix.Getegid() != 65534 || err != nil || fmt.Sprint(groups) != "[4242 65534]" && fmt.Sprint(groups) != "[65534 4242]" {
				return fmt.Errorf("thread holds %d:%d %v (%v)", unix.Geteuid(), unix.Getegid(), groups, err)
			}
			return nil
		}, nil, nil},
		{"what the user creates is the user's", nobody, func() error {
			if err := os.MkdirAll(filepath.Join(open, "a", "b"), 0o755); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(open, "a", "b", "f"), nil, 0o644)
		}, nil, func(t *testing.T) {
			for _, p := range []string{"a", "a/b", "a/b/f"} {
				var st syscall.Stat_t
				must(t, syscall.Stat(filepath.Join(open, p), &st))
				if st.Uid != 65534 || st.Gid != 65534 {
					t.Errorf("%s owned by %d:%d", p, st.Uid, st.Gid)
				}
			}
		}},
		{"the user may not remove in a root dir", nobody, func() error { return os.Remove(secret) }, syscall.EACCES, nil},
		{"other goroutines keep the daemon's credentials", nobody, func() error {
			errc := make(chan error, 1)
			go func() { errc <- read(secret)() }()
			if err := <-errc; err != nil {
				return fmt.Errorf("another goroutine could not read as root: %w", err)
			}
			return read(secret)()
		}, syscall.EACCES, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.user.Do(tc.fn)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Do: %v, want %v", err, tc.want)
			}
			if tc.then != nil {
				tc.then(t)
			}
			if msg := threadsAll(t, start, false); msg != "" {
				t.Fatal(msg)
			}
		})
	}
}

func TestDoConcurrentAndPanics(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: acting as another user takes CAP_SETUID")
	}
	start := daemonCreds(t)
	users := []User{
		{Name: "nobody", UID: 65534, GID: 65534, Groups: []uint32{65534}},
		{Name: "daemon", UID: 1, GID: 1, Groups: []uint32{1, 4242}},
	}
	var wg sync.WaitGroup
	errc := make(chan error, 200)
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := users[i%len(users)]
			errc <- u.Do(func() error {
				if got := unix.Geteuid(); got != int(u.UID) {
					return fmt.Errorf("%s ran as %d", u.Name, got)
				}
				time.Sleep(time.Millisecond)
				if got := unix.Geteuid(); got != int(u.UID) {
					return fmt.Errorf("%s ran as %d after a sleep", u.Name, got)
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
	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Fatalf("recovered %v, want the panic of fn", p)
			}
		}()
		_ = users[0].Do(func() error { panic("boom") })
	}()
	if msg := threadsAll(t, start, false); msg != "" {
		t.Fatal(msg)
	}
}

// TestDoRetiresABrokenThread has fn make its thread's credentials impossible to
// restore: Do must fail, and no goroutine may run on that thread again.
func TestDoRetiresABrokenThread(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: acting as another user takes CAP_SETUID")
	}
	start := daemonCreds(t)
	nobody := User{Name: "nobody", UID: 65534, GID: 65534, Groups: []uint32{65534}}
	err := nobody.Do(func() error {
		// Give up the saved root uid too: the thread can never be root again.
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, 65534, 65534, 65534); e != 0 {
			return e
		}
		return nil
	})
	if !errors.Is(err, syscall.EPERM) {
		t.Fatalf("Do: %v, want the failed restore (EPERM)", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for msg := threadsAll(t, start, false); msg != ""; msg = threadsAll(t, start, false) {
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Goroutines spread over every thread the runtime has: all run as the daemon.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bad []int
	for range 500 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			if uid := unix.Geteuid(); uid != 0 {
				mu.Lock()
				bad = append(bad, uid)
				mu.Unlock()
			}
			time.Sleep(time.Millisecond)
		}()
	}
	wg.Wait()
	if len(bad) > 0 {
		t.Fatalf("%d goroutines ran with euid %v", len(bad), bad)
	}
}

// BenchmarkDo measures what acting as another user adds to one file operation.
func BenchmarkDo(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: acting as another user takes CAP_SETUID")
	}
	nobody := User{Name: "nobody", UID: 65534, GID: 65534, Groups: []uint32{65534}}
	for b.Loop() {
		if err := nobody.Do(func() error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}
