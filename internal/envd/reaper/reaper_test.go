package reaper

import (
	"context"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

func TestReaperDeliversStatusesAndReapsOrphans(t *testing.T) {
	if err := BecomeSubreaper(); err != nil {
		t.Fatal(err)
	}
	r := New()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	start := func(script string) (int, <-chan syscall.WaitStatus) {
		t.Helper()
		pid, ch, err := r.Start(func() (int, error) {
			cmd := exec.Command("/bin/sh", "-c", script)
			if err := cmd.Start(); err != nil {
				return 0, err
			}
			return cmd.Process.Pid, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return pid, ch
	}
	cases := []struct {
		name   string
		script string
		check  func(ws syscall.WaitStatus) bool
	}{
		{"exit code", "exit 4", func(ws syscall.WaitStatus) bool { return ws.Exited() && ws.ExitStatus() == 4 }},
		{"immediate exit is not missed", "true", func(ws syscall.WaitStatus) bool { return ws.Exited() && ws.ExitStatus() == 0 }},
		{"signal", "kill -TERM $$", func(ws syscall.WaitStatus) bool { return ws.Signaled() && ws.Signal() == syscall.SIGTERM }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, ch := start(tc.script)
			select {
			case ws := <-ch:
				if !tc.check(ws) {
					t.Fatalf("status %#x", uint32(ws))
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no exit status")
			}
		})
	}
	t.Run("orphans", func(t *testing.T) {
		before := r.Orphans()
		_, ch := start("sleep 0.2 & sleep 0.2 & exit 0")
		<-ch
		deadline := time.Now().Add(5 * time.Second)
		for r.Orphans() < before+2 {
			if time.Now().After(deadline) {
				t.Fatalf("orphans reaped: %d", r.Orphans()-before)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	t.Run("start error", func(t *testing.T) {
		if _, _, err := r.Start(func() (int, error) { return 0, os.ErrNotExist }); err == nil {
			t.Fatal("no error")
		}
		if _, _, err := r.Start(func() (int, error) { return -1, nil }); err == nil {
			t.Fatal("a bad pid was accepted")
		}
	})
}
