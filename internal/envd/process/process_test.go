package process

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "lelantos.dev/lelantos/internal/gen/envd/process"
)

func TestStartStreamsOutputAndEnd(t *testing.T) {
	strp := func(s string) *string { return &s }
	cases := []struct {
		name       string
		req        *pb.StartRequest
		header     http.Header
		wantOut    string
		wantErr    string
		wantCode   int32
		wantExited bool
		wantStatus string
		wantError  *string
	}{
		{name: "stdout stderr and exit code", req: bash("echo out; echo err >&2; exit 3"),
			wantOut: "out\n", wantErr: "err\n", wantCode: 3, wantExited: true, wantStatus: "exit status 3", wantError: strp("exit status 3")},
		{name: "success has no error", req: bash("printf ok"), wantOut: "ok", wantExited: true, wantStatus: "exit status 0"},
		{name: "env layering: defaults, sandbox, call", req: &pb.StartRequest{Process: &pb.ProcessConfig{
			Cmd: "/bin/bash", Args: []string{"-c", `echo "$HOME $USER $LOGNAME $SANDBOX_VAR $CALL"; [ -n "$PATH" ]`},
			Envs: map[string]string{"CALL": "call"}}},
			wantOut: "/root root root sandbox call\n", wantExited: true, wantStatus: "exit status 0"},
		{name: "call env overrides sandbox env", req: &pb.StartRequest{Process: &pb.ProcessConfig{
			Cmd: "/bin/bash", Args: []string{"-c", `echo $SANDBOX_VAR`}, Envs: map[string]string{"SANDBOX_VAR": "call-wins"}}},
			wantOut: "call-wins\n", wantExited: true, wantStatus: "exit status 0"},
		{name: "default cwd is home", req: bash("pwd"), wantOut: "/root\n", wantExited: true, wantStatus: "exit status 0"},
		{name: "relative cwd from home", req: &pb.StartRequest{Process: &pb.ProcessConfig{Cmd: "pwd", Cwd: strp("..")}},
			wantOut: "/\n", wantExited: true, wantStatus: "exit status 0"},
		{name: "absolute cwd and PATH lookup", req: &pb.StartRequest{Process: &pb.ProcessConfig{Cmd: "pwd", Cwd: strp("/tmp")}},
			wantOut: "/tmp\n", wantExited: true, wantStatus: "exit status 0"},
		{name: "killed by a signal", req: bash("kill -KILL $$"),
			wantCode: -1, wantStatus: "signal: killed", wantError: strp("signal: killed")},
		{name: "runs as the Authorization user", header: basicAuth("nobody"),
			req:     &pb.StartRequest{Process: &pb.ProcessConfig{Cmd: "/bin/bash", Args: []string{"-c", `id -u; id -g; echo $HOME $USER`}, Cwd: strp("/tmp")}},
			wantOut: "65534\n65534\n/nonexistent nobody\n", wantExited: true, wantStatus: "exit status 0"},
		{name: "stdin defaults to closed when false", req: &pb.StartRequest{Process: &pb.ProcessConfig{Cmd: "cat"}, Stdin: new(bool)},
			wantExited: true, wantStatus: "exit status 0"},
	}
	codecs := map[string][]connect.ClientOption{"json": {connect.WithProtoJSON()}, "binary": nil}
	for codec, opts := range codecs {
		h := newHarness(t, opts...)
		for _, tc := range cases {
			t.Run(codec+"/"+tc.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				r, err := h.run(ctx, t, tc.req, tc.header)
				if err != nil {
					t.Fatalf("start: %v", err)
				}
				if r.events[0] != "start" || r.events[len(r.events)-1] != "end" || r.pid == 0 {
					t.Fatalf("events %v (pid %d): want start first and end last", r.events, r.pid)
				}
				if r.stdout != tc.wantOut || r.stderr != tc.wantErr {
					t.Fatalf("stdout %q stderr %q, want %q %q", r.stdout, r.stderr, tc.wantOut, tc.wantErr)
				}
				e := r.end
				if e.GetExitCode() != tc.wantCode || e.GetExited() != tc.wantExited || e.GetStatus() != tc.wantStatus {
					t.Fatalf("end %v, want code %d exited %v status %q", e, tc.wantCode, tc.wantExited, tc.wantStatus)
				}
				if (e.Error == nil) != (tc.wantError == nil) || (e.Error != nil && *e.Error != *tc.wantError) {
					t.Fatalf("end error %v, want %v", e.Error, tc.wantError)
				}
			})
		}
	}
}

func TestStartRejectsBadRequests(t *testing.T) {
	h := newHarness(t)
	strp := func(s string) *string { return &s }
	bad := http.Header{"Authorization": []string{"Bearer xyz"}}
	cases := []struct {
		name   string
		req    *pb.StartRequest
		header http.Header
		want   connect.Code
	}{
		{"no process", &pb.StartRequest{}, nil, connect.CodeInvalidArgument},
		{"empty cmd", &pb.StartRequest{Process: &pb.ProcessConfig{}}, nil, connect.CodeInvalidArgument},
		{"missing cwd", &pb.StartRequest{Process: &pb.ProcessConfig{Cmd: "true", Cwd: strp("/does/not/exist")}}, nil, connect.CodeInvalidArgument},
		{"cwd is a file", &pb.StartRequest{Process: &pb.ProcessConfig{Cmd: "true", Cwd: strp("/etc/passwd")}}, nil, connect.CodeInvalidArgument},
		{"unknown executable", &pb.StartRequest{Process: &pb.ProcessConfig{Cmd: "no-such-binary-here"}}, nil, connect.CodeInvalidArgument},
		{"not executable", &pb.StartRequest{Process: &pb.ProcessConfig{Cmd: "/etc/passwd"}}, nil, connect.CodeInvalidArgument},
		{"bad env key", &pb.StartRequest{Process: &pb.ProcessConfig{Cmd: "true", Envs: map[string]string{"A=B": "x"}}}, nil, connect.CodeInvalidArgument},
		{"unknown user", bash("true"), basicAuth("no-such-user-xyz"), connect.CodeUnauthenticated},
		{"malformed authorization", bash("true"), bad, connect.CodeUnauthenticated},
		{"bad home expansion", &pb.StartRequest{Process: &pb.ProcessConfig{Cmd: "true", Cwd: strp("~someone")}}, nil, connect.CodeInvalidArgument},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.run(context.Background(), t, tc.req, tc.header)
			if codeOf(err) != tc.want {
				t.Fatalf("err %v, want code %v", err, tc.want)
			}
		})
	}
}

func TestUnknownProcessIsNotFound(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	byPid := &pb.ProcessSelector{Selector: &pb.ProcessSelector_Pid{Pid: 4_000_000}}
	byTag := &pb.ProcessSelector{Selector: &pb.ProcessSelector_Tag{Tag: "no-such-tag"}}
	stdin := &pb.ProcessInput{Input: &pb.ProcessInput_Stdin{Stdin: []byte("x")}}
	cases := []struct {
		name string
		call func() error
		want connect.Code
	}{
		{"connect by pid", func() error {
			s, err := h.client.Connect(ctx, connect.NewRequest(&pb.ConnectRequest{Process: byPid}))
			if err != nil {
				return err
			}
			_, err = collect(s, connectEvent)
			return err
		}, connect.CodeNotFound},
		{"connect by tag", func() error {
			s, err := h.client.Connect(ctx, connect.NewRequest(&pb.ConnectRequest{Process: byTag}))
			if err != nil {
				return err
			}
			_, err = collect(s, connectEvent)
			return err
		}, connect.CodeNotFound},
		{"connect without selector", func() error {
			s, err := h.client.Connect(ctx, connect.NewRequest(&pb.ConnectRequest{}))
			if err != nil {
				return err
			}
			_, err = collect(s, connectEvent)
			return err
		}, connect.CodeInvalidArgument},
		{"send input", func() error {
			_, err := h.client.SendInput(ctx, connect.NewRequest(&pb.SendInputRequest{Process: byPid, Input: stdin}))
			return err
		}, connect.CodeNotFound},
		{"send signal", func() error {
			_, err := h.client.SendSignal(ctx, connect.NewRequest(&pb.SendSignalRequest{Process: byPid, Signal: pb.Signal_SIGNAL_SIGKILL}))
			return err
		}, connect.CodeNotFound},
		{"unspecified signal", func() error {
			_, err := h.client.SendSignal(ctx, connect.NewRequest(&pb.SendSignalRequest{Process: byPid}))
			return err
		}, connect.CodeInvalidArgument},
		{"update", func() error {
			_, err := h.client.Update(ctx, connect.NewRequest(&pb.UpdateRequest{Process: byTag, Pty: &pb.PTY{Size: &pb.PTY_Size{Cols: 1, Rows: 1}}}))
			return err
		}, connect.CodeNotFound},
		{"close stdin", func() error {
			_, err := h.client.CloseStdin(ctx, connect.NewRequest(&pb.CloseStdinRequest{Process: byPid}))
			return err
		}, connect.CodeNotFound},
		{"stream input", func() error {
			s := h.client.StreamInput(ctx)
			_ = s.Send(&pb.StreamInputRequest{Event: &pb.StreamInputRequest_Start{Start: &pb.StreamInputRequest_StartEvent{Process: byPid}}})
			_, err := s.CloseAndReceive()
			return err
		}, connect.CodeNotFound},
		{"stream input without start", func() error {
			s := h.client.StreamInput(ctx)
			_ = s.Send(&pb.StreamInputRequest{Event: &pb.StreamInputRequest_Data{Data: &pb.StreamInputRequest_DataEvent{Input: stdin}}})
			_, err := s.CloseAndReceive()
			return err
		}, connect.CodeInvalidArgument},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); codeOf(err) != tc.want {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
}

func TestReattachReceivesWhatWasPrintedMeanwhile(t *testing.T) {
	h := newHarness(t)
	tag := "replay-job"
	req := bash("echo first; sleep 0.6; echo second; echo third >&2; sleep 0.6; echo fourth")
	req.Tag = &tag
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := h.client.Start(ctx, connect.NewRequest(req))
	if err != nil {
		t.Fatal(err)
	}
	var pid uint32
	for stream.Receive() {
		ev := stream.Msg().GetEvent()
		if s := ev.GetStart(); s != nil {
			pid = s.GetPid()
		}
		if string(ev.GetData().GetStdout()) == "first\n" {
			break
		}
	}
	cancel()
	_ = stream.Close()
	time.Sleep(900 * time.Millisecond)
	if !h.listed(t, pid) {
		t.Fatalf("process %d stopped when its client left", pid)
	}
	for _, sel := range []*pb.ProcessSelector{{Selector: &pb.ProcessSelector_Tag{Tag: tag}}} {
		c, err := h.client.Connect(context.Background(), connect.NewRequest(&pb.ConnectRequest{Process: sel}))
		if err != nil {
			t.Fatal(err)
		}
		r, err := collect(c, connectEvent)
		if err != nil {
			t.Fatal(err)
		}
		if r.pid != pid || r.events[0] != "start" {
			t.Fatalf("first event %v pid %d, want start of %d", r.events, r.pid, pid)
		}
		if r.stdout != "second\nfourth\n" || r.stderr != "third\n" || r.end.GetExitCode() != 0 {
			t.Fatalf("re-attached stdout %q stderr %q end %v", r.stdout, r.stderr, r.end)
		}
	}
}

func TestDeadlineKillsProcessButCancelDoesNot(t *testing.T) {
	h := newHarness(t)
	t.Run("deadline kills", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
		defer cancel()
		stream, err := h.client.Start(ctx, connect.NewRequest(bash("exec sleep 30")))
		if err != nil {
			t.Fatal(err)
		}
		r, err := collect(stream, startEvent)
		if codeOf(err) != connect.CodeDeadlineExceeded {
			t.Fatalf("err %v, want deadline_exceeded", err)
		}
		eventually(t, 3*time.Second, "the process to be gone", func() bool {
			_, statErr := os.Stat(filepath.Join("/proc", strconv.Itoa(int(r.pid))))
			return !h.listed(t, r.pid) && os.IsNotExist(statErr)
		})
	})
	t.Run("cancel keeps it running", func(t *testing.T) {
		pid, cancel, done := h.startAsync(t, bash("exec sleep 30"))
		cancel()
		<-done
		time.Sleep(300 * time.Millisecond)
		if !h.listed(t, pid) {
			t.Fatal("a cancelled stream killed its process")
		}
		if _, err := h.client.SendSignal(context.Background(), connect.NewRequest(&pb.SendSignalRequest{
			Process: &pb.ProcessSelector{Selector: &pb.ProcessSelector_Pid{Pid: pid}}, Signal: pb.Signal_SIGNAL_SIGKILL})); err != nil {
			t.Fatal(err)
		}
		eventually(t, 3*time.Second, "the killed process to go", func() bool { return !h.listed(t, pid) })
	})
}

func TestOrphansAreReapedAndDoNotHoldTheStream(t *testing.T) {
	h := newHarness(t)
	before := testReaper.Orphans()
	start := time.Now()
	r, err := h.run(context.Background(), t, bash("sleep 3 & sleep 3 & echo parent done"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.stdout != "parent done\n" || r.end.GetExitCode() != 0 {
		t.Fatalf("stdout %q end %v", r.stdout, r.end)
	}
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Fatalf("the end waited %v for children holding the pipes", d)
	}
	eventually(t, 10*time.Second, "both orphans to be reaped", func() bool { return testReaper.Orphans() >= before+2 })
	if z := zombiesOf(t, os.Getpid()); len(z) > 0 {
		t.Fatalf("zombie children left: %v", z)
	}
}

// zombiesOf lists the zombie children of pid.
func zombiesOf(t *testing.T, pid int) []string {
	t.Helper()
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range dirs {
		if _, err := strconv.Atoi(d.Name()); err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(data)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) > 1 && fields[0] == "Z" && fields[1] == strconv.Itoa(pid) {
			out = append(out, d.Name())
		}
	}
	return out
}

func TestLargeOutputArrivesWhole(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		name   string
		script string
		check  func(string) bool
	}{
		{"5 MB in big chunks", "head -c 5000000 /dev/zero | tr '\\0' x", func(s string) bool {
			return len(s) == 5000000 && strings.Count(s, "x") == 5000000
		}},
		{"200000 lines", "seq 1 200000", func(s string) bool {
			lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
			return len(lines) == 200000 && lines[199999] == "200000"
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := h.run(context.Background(), t, bash(tc.script), nil)
			if err != nil || !tc.check(r.stdout) || r.end.GetExitCode() != 0 {
				t.Fatalf("err %v, %d bytes, end %v", err, len(r.stdout), r.end)
			}
		})
	}
}

func TestEndEventDescribesWaitStatus(t *testing.T) {
	cases := []struct {
		name       string
		ws         syscall.WaitStatus
		code       int32
		exited     bool
		status     string
		wantErrSet bool
	}{
		{"exit 0", 0, 0, true, "exit status 0", false},
		{"exit 2", 2 << 8, 2, true, "exit status 2", true},
		{"sigkill", syscall.WaitStatus(syscall.SIGKILL), -1, false, "signal: killed", true},
		{"sigterm", syscall.WaitStatus(syscall.SIGTERM), -1, false, "signal: terminated", true},
		{"core dump", syscall.WaitStatus(syscall.SIGABRT) | 0x80, -1, false, "signal: aborted (core dumped)", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := endEvent(tc.ws)
			if e.ExitCode != tc.code || e.Exited != tc.exited || e.Status != tc.status || (e.Error != nil) != tc.wantErrSet {
				t.Fatalf("got %v", e)
			}
		})
	}
}
