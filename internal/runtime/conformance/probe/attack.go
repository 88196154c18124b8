package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// attacks are what root inside a sandbox tries in order to reach the host. Each
// returns nil when it got through; none of them changes anything of the host even
// then (files are opened for writing but nothing is written, a disk is only read).
var attacks = map[string]func(r *http.Request) error{
	"core-pattern": func(*http.Request) error { return openForWrite("/proc/sys/kernel/core_pattern") },
	"sysrq":        func(*http.Request) error { return openForWrite("/proc/sysrq-trigger") },
	"read":         func(r *http.Request) error { return readSome(r.URL.Query().Get("path")) },
	"list":         func(r *http.Request) error { return listSome(r.URL.Query().Get("path")) },
	"mount-proc": func(*http.Request) error {
		return mountAt(func(dir string) error { return unix.Mount("proc", dir, "proc", 0, "") })
	},
	"mount-bind": func(*http.Request) error {
		return mountAt(func(dir string) error { return unix.Mount("/", dir, "", unix.MS_BIND, "") })
	},
	"userns-mount": func(*http.Request) error { return inChild("mount-tmpfs", unix.CLONE_NEWUSER|unix.CLONE_NEWNS, nil) },
	"load-module": func(*http.Request) error {
		// An empty image: a kernel that lets the call through answers ENOEXEC.
		err := unix.InitModule([]byte{0}, "")
		if errors.Is(err, unix.ENOEXEC) || errors.Is(err, unix.EINVAL) {
			return nil
		}
		return err
	},
	"ptrace-other-user": func(*http.Request) error { return ptraceOtherUser() },
	"mknod-disk": func(r *http.Request) error {
		major, _ := strconv.Atoi(r.URL.Query().Get("major"))
		minor, _ := strconv.Atoi(r.URL.Query().Get("minor"))
		return readDisk(uint32(major), uint32(minor))
	},
}

// attack runs the attack named by ?op= and answers "got through" or its error.
func attack(w http.ResponseWriter, r *http.Request) {
	f, ok := attacks[r.URL.Query().Get("op")]
	if !ok {
		http.Error(w, "unknown op", http.StatusBadRequest)
		return
	}
	if err := f(r); err != nil {
		fmt.Fprintf(w, "refused: %v", err)
		return
	}
	fmt.Fprint(w, "got through")
}

func openForWrite(path string) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	return unix.Close(fd)
}

func readSome(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := f.Read(make([]byte, 64))
	if n == 0 {
		return fmt.Errorf("read %s: no data (%v)", path, err)
	}
	return nil
}

func listSome(path string) error {
	ents, err := os.ReadDir(path)
	if err != nil {
		return err
	}
	if len(ents) == 0 {
		return fmt.Errorf("list %s: empty", path)
	}
	return nil
}

// mountAt calls mount on a fresh directory and undoes it when it worked.
func mountAt(mount func(dir string) error) error {
	dir, err := os.MkdirTemp("", "mnt-")
	if err != nil {
		return err
	}
	defer os.Remove(dir)
	if err := mount(dir); err != nil {
		return err
	}
	return unix.Unmount(dir, unix.MNT_DETACH)
}

// inChild runs this program's child mode op in a child process made with the
// clone flags, and returns its error.
func inChild(op string, cloneflags uintptr, cred *syscall.Credential) error {
	cmd := exec.Command("/proc/self/exe", "child", op)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: cloneflags, Credential: cred}
	if cloneflags&unix.CLONE_NEWUSER != 0 {
		cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}}
		cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

// child is the probe run as a child process: "child mount-tmpfs" mounts a tmpfs,
// "child sleep" waits to be killed.
func child(op string) {
	switch op {
	case "mount-tmpfs":
		if err := mountAt(func(dir string) error { return unix.Mount("tmpfs", dir, "tmpfs", 0, "") }); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
	case "sleep":
		time.Sleep(time.Minute)
	}
	os.Exit(0)
}

// ptraceOtherUser attaches to a process of another user: only CAP_SYS_PTRACE allows it.
func ptraceOtherUser() error {
	cmd := exec.Command("/proc/self/exe", "child", "sleep")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 1000, Gid: 1000}}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start a process as uid 1000: %w", err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	time.Sleep(50 * time.Millisecond)
	done := make(chan error, 1)
	go func() {
		// ptrace belongs to the thread that attached; this one ends with the goroutine.
		runtime.LockOSThread()
		err := unix.PtraceAttach(cmd.Process.Pid)
		if err == nil {
			_ = unix.PtraceDetach(cmd.Process.Pid)
		}
		done <- err
	}()
	return <-done
}

// readDisk makes a block device node of the host disk major:minor and reads it.
func readDisk(major, minor uint32) error {
	dir, err := os.MkdirTemp("", "dev-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	node := filepath.Join(dir, "disk")
	if err := unix.Mknod(node, unix.S_IFBLK|0o600, int(unix.Mkdev(major, minor))); err != nil {
		return fmt.Errorf("mknod: %w", err)
	}
	if err := readSome(node); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	return nil
}
