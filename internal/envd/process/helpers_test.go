package process

import (
	"context"
	"encoding/base64"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "lelantos.dev/lelantos/internal/gen/envd/process"
	"lelantos.dev/lelantos/internal/gen/envd/process/processconnect"
)

// fakeEnv is a fixed Environment.
type fakeEnv struct {
	mu      sync.Mutex
	env     map[string]string
	user    string
	workdir string
}

func (f *fakeEnv) Env() map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.env)
}
func (f *fakeEnv) DefaultUser() string    { return f.user }
func (f *fakeEnv) DefaultWorkdir() string { return f.workdir }

// harness is a Service behind a test HTTP server with a client.
type harness struct {
	svc    *Service
	client processconnect.ProcessClient
	env    *fakeEnv
}

func newHarness(t *testing.T, opts ...connect.ClientOption) *harness {
	t.Helper()
	return newHarnessWith(t, nil, opts...)
}

// newHarnessWith is newHarness with options of the Service.
func newHarnessWith(t *testing.T, svcOpts []Option, opts ...connect.ClientOption) *harness {
	t.Helper()
	env := &fakeEnv{env: map[string]string{"SANDBOX_VAR": "sandbox"}, user: "root"}
	svc := NewService(env, testReaper, nil, svcOpts...)
	mux := http.NewServeMux()
	mux.Handle(svc.Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		svc.Close()
		srv.Close()
	})
	return &harness{svc: svc, env: env, client: processconnect.NewProcessClient(srv.Client(), srv.URL, opts...)}
}

// result is what a process stream delivered.
type result struct {
	pid        uint32
	stdout     string
	stderr     string
	pty        string
	end        *pb.ProcessEvent_EndEvent
	keepalives int
	events     []string
}

// eventStream is what Start and Connect streams have in common.
type eventStream interface {
	Receive() bool
	Err() error
}

// collect reads a stream to its end; event extracts the event of a message.
func collect[T any](s interface {
	eventStream
	Msg() *T
}, event func(*T) *pb.ProcessEvent) (result, error) {
	var r result
	for s.Receive() {
		switch ev := event(s.Msg()).GetEvent().(type) {
		case *pb.ProcessEvent_Start:
			r.pid = ev.Start.GetPid()
			r.events = append(r.events, "start")
		case *pb.ProcessEvent_Data:
			r.events = append(r.events, "data")
			r.stdout += string(ev.Data.GetStdout())
			r.stderr += string(ev.Data.GetStderr())
			r.pty += string(ev.Data.GetPty())
		case *pb.ProcessEvent_End:
			r.events = append(r.events, "end")
			r.end = ev.End
		case *pb.ProcessEvent_Keepalive:
			r.keepalives++
		}
	}
	return r, s.Err()
}

func startEvent(m *pb.StartResponse) *pb.ProcessEvent     { return m.GetEvent() }
func connectEvent(m *pb.ConnectResponse) *pb.ProcessEvent { return m.GetEvent() }

// bash is a StartRequest running script with bash -c.
func bash(script string) *pb.StartRequest {
	return &pb.StartRequest{Process: &pb.ProcessConfig{Cmd: "/bin/bash", Args: []string{"-c", script}}}
}

// run starts req and collects its stream.
func (h *harness) run(ctx context.Context, t *testing.T, req *pb.StartRequest, header http.Header) (result, error) {
	t.Helper()
	creq := connect.NewRequest(req)
	for k, v := range header {
		creq.Header()[k] = v
	}
	stream, err := h.client.Start(ctx, creq)
	if err != nil {
		return result{}, err
	}
	defer stream.Close()
	return collect(stream, startEvent)
}

// startAsync starts req and returns its pid once the start event arrived, with
// the stream left open on a context the test can cancel.
func (h *harness) startAsync(t *testing.T, req *pb.StartRequest) (uint32, context.CancelFunc, <-chan result) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := h.client.Start(ctx, connect.NewRequest(req))
	if err != nil {
		cancel()
		t.Fatalf("start: %v", err)
	}
	if !stream.Receive() {
		cancel()
		t.Fatalf("no start event: %v", stream.Err())
	}
	pid := stream.Msg().GetEvent().GetStart().GetPid()
	if pid == 0 {
		cancel()
		t.Fatalf("first event is not start: %v", stream.Msg())
	}
	done := make(chan result, 1)
	go func() {
		r, _ := collect(stream, startEvent)
		r.pid = pid
		done <- r
	}()
	t.Cleanup(cancel)
	return pid, cancel, done
}

// codeOf returns the Connect code of err (0 when it has none).
func codeOf(err error) connect.Code {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce.Code()
	}
	return connect.Code(0)
}

// basicAuth builds the header selecting a user.
func basicAuth(user string) http.Header {
	h := http.Header{}
	h.Set("Authorization", "Basic "+b64(user+":"))
	return h
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// listed reports whether pid is in the List response.
func (h *harness) listed(t *testing.T, pid uint32) bool {
	t.Helper()
	res, err := h.client.List(context.Background(), connect.NewRequest(&pb.ListRequest{}))
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	for _, p := range res.Msg.GetProcesses() {
		if p.GetPid() == pid {
			return true
		}
	}
	return false
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
