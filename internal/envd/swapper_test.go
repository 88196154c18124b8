package envd

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// swapperEnv, when set, turns the test binary into a swapper (see runSwapper):
// mode, link, first target, second target, uid and gid, separated by tabs.
const swapperEnv = "LELANTOS_ENVD_TEST_SWAPPER"

// The ways a swapper changes its link.
const (
	// swapRetarget keeps link a symlink and points it at each target in turn.
	swapRetarget = "retarget"
	// swapFile makes link a regular file holding the first target's name, then a
	// symlink to the second target, in turn.
	swapFile = "file"
	// swapExchange makes link a directory of its own holding a file named by the
	// first target, and link.alt a symlink to the second target, then exchanges
	// the two names (renameat2 RENAME_EXCHANGE) again and again.
	swapExchange = "exchange"
)

// runSwapper is the body of a swapper process: it drops to the uid and gid it
// was given and then, until it is killed, atomically replaces the link (a
// rename over it) as its mode says, as fast as it can.
func runSwapper(spec string) int {
	f := strings.Split(spec, "\t")
	if len(f) != 6 {
		fmt.Fprintf(os.Stderr, "swapper: bad spec %q\n", spec)
		return 2
	}
	mode, link, a, b := f[0], f[1], f[2], f[3]
	uid, err1 := strconv.Atoi(f[4])
	gid, err2 := strconv.Atoi(f[5])
	if err1 != nil || err2 != nil {
		fmt.Fprintf(os.Stderr, "swapper: bad ids in %q\n", spec)
		return 2
	}
	if err := syscall.Setgroups([]int{gid}); err != nil {
		fmt.Fprintln(os.Stderr, "swapper: setgroups:", err)
		return 2
	}
	if err := syscall.Setgid(gid); err != nil {
		fmt.Fprintln(os.Stderr, "swapper: setgid:", err)
		return 2
	}
	if err := syscall.Setuid(uid); err != nil {
		fmt.Fprintln(os.Stderr, "swapper: setuid:", err)
		return 2
	}
	if mode == swapExchange {
		return exchangeLoop(link, a, b)
	}
	tmp := link + ".swap"
	for i := 0; ; i++ {
		_ = os.Remove(tmp)
		var err error
		switch {
		case i%2 == 1:
			err = os.Symlink(b, tmp)
		case mode == swapFile:
			err = os.WriteFile(tmp, []byte(a), 0o644)
		default:
			err = os.Symlink(a, tmp)
		}
		if err == nil {
			err = os.Rename(tmp, link)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "swapper:", err)
			return 1
		}
	}
}

// exchangeLoop is a swapper's loop in swapExchange mode.
func exchangeLoop(link, file, target string) int {
	alt := link + ".alt"
	if err := os.Mkdir(link, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "swapper:", err)
		return 1
	}
	if err := os.WriteFile(filepath.Join(link, file), []byte(file), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "swapper:", err)
		return 1
	}
	if err := os.Symlink(target, alt); err != nil {
		fmt.Fprintln(os.Stderr, "swapper:", err)
		return 1
	}
	for {
		if err := unix.Renameat2(unix.AT_FDCWD, link, unix.AT_FDCWD, alt, unix.RENAME_EXCHANGE); err != nil {
			fmt.Fprintln(os.Stderr, "swapper: exchange:", err)
			return 1
		}
	}
}

// startSwapper runs a swapper as uid:gid on link until the test ends, waits
// until link exists and returns a check that fails the test once the swapper
// has stopped.
func startSwapper(t *testing.T, uid, gid int, mode, link, a, b string) (running func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), swapperEnv+"="+strings.Join([]string{mode, link, a, b, strconv.Itoa(uid), strconv.Itoa(gid)}, "\t"))
	cmd.Stderr = os.Stderr
	_, exited, err := testReaper.Start(func() (int, error) {
		if err := cmd.Start(); err != nil {
			return 0, err
		}
		return cmd.Process.Pid, nil
	})
	if err != nil {
		t.Fatalf("start swapper: %v", err)
	}
	done := make(chan struct{})
	var status syscall.WaitStatus
	go func() {
		status = <-exited
		close(done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		_ = os.Remove(link + ".swap")
		_ = os.Remove(link + ".alt")
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Lstat(link); err == nil {
			return func() {
				t.Helper()
				select {
				case <-done:
					t.Fatalf("the swapper stopped: %v", status)
				default:
				}
			}
		}
		select {
		case <-done:
			t.Fatalf("swapper exited at once: %v", status)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("swapper made no link in 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}
