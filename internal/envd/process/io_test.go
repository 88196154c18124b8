package process

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "lelantos.dev/lelantos/internal/gen/envd/process"
)

func TestStdinInputAndClose(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	yes := true
	sel := func(pid uint32) *pb.ProcessSelector {
		return &pb.ProcessSelector{Selector: &pb.ProcessSelector_Pid{Pid: pid}}
	}
	t.Run("send input", func(t *testing.T) {
		pid, _, done := h.startAsync(t, &pb.StartRequest{Process: &pb.ProcessConfig{Cmd: "cat"}, Stdin: &yes})
		in := &pb.ProcessInput{Input: &pb.ProcessInput_Stdin{Stdin: []byte("abc\n")}}
		if _, err := h.client.SendInput(ctx, connect.NewRequest(&pb.SendInputRequest{Process: sel(pid), Input: in})); err != nil {
			t.Fatal(err)
		}
		if _, err := h.client.CloseStdin(ctx, connect.NewRequest(&pb.CloseStdinRequest{Process: sel(pid)})); err != nil {
			t.Fatal(err)
		}
		r := <-done
		if r.stdout != "abc\n" || r.end.GetExitCode() != 0 {
			t.Fatalf("stdout %q end %v", r.stdout, r.end)
		}
	})
	t.Run("stream input", func(t *testing.T) {
		pid, _, done := h.startAsync(t, &pb.StartRequest{Process: &pb.ProcessConfig{Cmd: "cat"}})
		s := h.client.StreamInput(ctx)
		msgs := []*pb.StreamInputRequest{
			{Event: &pb.StreamInputRequest_Start{Start: &pb.StreamInputRequest_StartEvent{Process: sel(pid)}}},
			{Event: &pb.StreamInputRequest_Data{Data: &pb.StreamInputRequest_DataEvent{Input: &pb.ProcessInput{Input: &pb.ProcessInput_Stdin{Stdin: []byte("one ")}}}}},
			{Event: &pb.StreamInputRequest_Keepalive{Keepalive: &pb.StreamInputRequest_KeepAlive{}}},
			{Event: &pb.StreamInputRequest_Data{Data: &pb.StreamInputRequest_DataEvent{Input: &pb.ProcessInput{Input: &pb.ProcessInput_Stdin{Stdin: []byte("two")}}}}},
		}
		for _, m := range msgs {
			if err := s.Send(m); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.CloseAndReceive(); err != nil {
			t.Fatal(err)
		}
		if _, err := h.client.CloseStdin(ctx, connect.NewRequest(&pb.CloseStdinRequest{Process: sel(pid)})); err != nil {
			t.Fatal(err)
		}
		if r := <-done; r.stdout != "one two" {
			t.Fatalf("stdout %q", r.stdout)
		}
	})
	t.Run("stdin disabled", func(t *testing.T) {
		no := false
		pid, _, done := h.startAsync(t, &pb.StartRequest{Process: &pb.ProcessConfig{Cmd: "/bin/bash", Args: []string{"-c", "sleep 0.5; cat"}}, Stdin: &no})
		in := &pb.ProcessInput{Input: &pb.ProcessInput_Stdin{Stdin: []byte("x")}}
		_, err := h.client.SendInput(ctx, connect.NewRequest(&pb.SendInputRequest{Process: sel(pid), Input: in}))
		if codeOf(err) != connect.CodeFailedPrecondition {
			t.Fatalf("err %v, want failed_precondition", err)
		}
		if r := <-done; r.stdout != "" || r.end.GetExitCode() != 0 {
			t.Fatalf("cat of /dev/null: %q %v", r.stdout, r.end)
		}
	})
}

func TestPTYInputOutputResize(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	req := &pb.StartRequest{
		Process: &pb.ProcessConfig{Cmd: "/bin/bash", Args: []string{"-c", "stty size; read line; stty size; echo got:$line"}},
		Pty:     &pb.PTY{Size: &pb.PTY_Size{Cols: 80, Rows: 24}},
	}
	pid, _, done := h.startAsync(t, req)
	sel := &pb.ProcessSelector{Selector: &pb.ProcessSelector_Pid{Pid: pid}}
	stdin := &pb.ProcessInput{Input: &pb.ProcessInput_Stdin{Stdin: []byte("x")}}
	if _, err := h.client.SendInput(ctx, connect.NewRequest(&pb.SendInputRequest{Process: sel, Input: stdin})); codeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("stdin to a PTY process: %v", err)
	}
	if _, err := h.client.CloseStdin(ctx, connect.NewRequest(&pb.CloseStdinRequest{Process: sel})); codeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("close stdin of a PTY process: %v", err)
	}
	time.Sleep(200 * time.Millisecond)
	if _, err := h.client.Update(ctx, connect.NewRequest(&pb.UpdateRequest{Process: sel, Pty: &pb.PTY{Size: &pb.PTY_Size{Cols: 100, Rows: 30}}})); err != nil {
		t.Fatal(err)
	}
	in := &pb.ProcessInput{Input: &pb.ProcessInput_Pty{Pty: []byte("hello\n")}}
	if _, err := h.client.SendInput(ctx, connect.NewRequest(&pb.SendInputRequest{Process: sel, Input: in})); err != nil {
		t.Fatal(err)
	}
	r := <-done
	for _, want := range []string{"24 80", "30 100", "got:hello"} {
		if !strings.Contains(r.pty, want) {
			t.Fatalf("pty output %q lacks %q", r.pty, want)
		}
	}
	if r.stdout != "" || r.end.GetExitCode() != 0 {
		t.Fatalf("stdout %q end %v", r.stdout, r.end)
	}
	t.Run("resize without a pty", func(t *testing.T) {
		pid, _, _ := h.startAsync(t, bash("sleep 1"))
		_, err := h.client.Update(ctx, connect.NewRequest(&pb.UpdateRequest{
			Process: &pb.ProcessSelector{Selector: &pb.ProcessSelector_Pid{Pid: pid}}, Pty: &pb.PTY{Size: &pb.PTY_Size{Cols: 1, Rows: 1}}}))
		if codeOf(err) != connect.CodeFailedPrecondition {
			t.Fatalf("err %v", err)
		}
	})
}

func TestKeepaliveAndSigterm(t *testing.T) {
	h := newHarness(t)
	hdr := http.Header{KeepaliveHeader: []string{"1"}}
	r, err := h.run(context.Background(), t, bash("sleep 2.7"), hdr)
	if err != nil {
		t.Fatal(err)
	}
	if r.keepalives < 2 {
		t.Fatalf("%d keepalives in 2.7 s at 1 s", r.keepalives)
	}
	pid, _, done := h.startAsync(t, bash("trap 'echo term; exit 5' TERM; sleep 20 & wait"))
	time.Sleep(300 * time.Millisecond)
	if _, err := h.client.SendSignal(context.Background(), connect.NewRequest(&pb.SendSignalRequest{
		Process: &pb.ProcessSelector{Selector: &pb.ProcessSelector_Pid{Pid: pid}}, Signal: pb.Signal_SIGNAL_SIGTERM})); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.stdout != "term\n" || r.end.GetExitCode() != 5 {
		t.Fatalf("stdout %q end %v", r.stdout, r.end)
	}
}
