// Package process implements the daemon's process.Process Connect service: it
// starts processes as the calling user (pipes or a PTY), streams their output to
// any number of attached clients, keeps what was printed while nobody listened
// for the next client to attach, and kills a process when its start request's
// deadline passes.
package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"connectrpc.com/connect"

	"lelantos.dev/lelantos/internal/envd/identity"
	pb "lelantos.dev/lelantos/internal/gen/envd/process"
	"lelantos.dev/lelantos/internal/gen/envd/process/processconnect"
)

// KeepaliveHeader is the request header carrying the keepalive interval in seconds.
const KeepaliveHeader = "Keepalive-Ping-Interval"

// Environment is what the service needs from the sandbox's settings.
type Environment interface {
	// Env returns the sandbox's environment variables.
	Env() map[string]string
	// DefaultUser returns the user calls run as by default ("" for the fallback).
	DefaultUser() string
	// DefaultWorkdir returns the default working directory ("" for the home).
	DefaultWorkdir() string
}

// Service implements processconnect.ProcessHandler.
type Service struct {
	env   Environment
	mgr   *manager
	users *identity.Users
	log   *slog.Logger
}

var _ processconnect.ProcessHandler = (*Service)(nil)

// StartCommandTag is the tag the node starts a template's start command
// with (a wire value shared with the node's engine).
const StartCommandTag = "start-cmd"

// Option configures a Service.
type Option func(*manager)

// WithConsole copies the output (stdout, stderr or terminal) of every process
// tagged StartCommandTag to w, in the order it is read; nil copies nothing.
// Writes that fail are dropped: the console never holds a process up.
func WithConsole(w io.Writer) Option {
	return func(m *manager) { m.console = w }
}

// NewService returns a Service that starts children through spawner.
func NewService(env Environment, spawner Spawner, log *slog.Logger, opts ...Option) *Service {
	if log == nil {
		log = slog.Default()
	}
	mgr := newManager(spawner)
	for _, o := range opts {
		o(mgr)
	}
	return &Service{env: env, mgr: mgr, users: identity.NewUsers(), log: log}
}

// Handler returns the route prefix and HTTP handler of the service.
func (s *Service) Handler(opts ...connect.HandlerOption) (string, http.Handler) {
	return processconnect.NewProcessHandler(s, opts...)
}

// Close kills every process the service started.
func (s *Service) Close() { s.mgr.killAll() }

// user resolves who a call runs as from its Authorization header.
func (s *Service) user(h http.Header) (identity.User, error) {
	name, err := identity.UsernameFromAuthorization(h.Get("Authorization"))
	if err != nil {
		return identity.User{}, connect.NewError(connect.CodeUnauthenticated, err)
	}
	u, err := s.users.Resolve(name, s.env.DefaultUser())
	if err != nil {
		return identity.User{}, connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("resolve user: %w", err))
	}
	return u, nil
}

// List reports the running processes.
func (s *Service) List(_ context.Context, _ *connect.Request[pb.ListRequest]) (*connect.Response[pb.ListResponse], error) {
	return connect.NewResponse(&pb.ListResponse{Processes: s.mgr.list()}), nil
}

// Start runs a process and streams its events until it ends.
func (s *Service) Start(ctx context.Context, req *connect.Request[pb.StartRequest], stream *connect.ServerStream[pb.StartResponse]) error {
	u, err := s.user(req.Header())
	if err != nil {
		return err
	}
	sp, err := buildSpec(req.Msg, u, s.env.Env(), s.env.DefaultWorkdir())
	if err != nil {
		return err
	}
	p, sub, err := s.mgr.start(sp)
	if err != nil {
		if sp.explain != nil {
			if why := sp.explain(); why != nil {
				return why
			}
		}
		return err
	}
	defer p.out.unsubscribe(sub)
	if deadline, ok := ctx.Deadline(); ok {
		p.killAt(deadline)
	}
	s.log.Debug("process started", "pid", p.pid, "cmd", sp.path, "user", u.Name)
	send := func(ev *pb.ProcessEvent) error { return stream.Send(&pb.StartResponse{Event: ev}) }
	err = pump(ctx, p, sub, send, keepalive(req.Header()))
	if errors.Is(err, context.DeadlineExceeded) {
		return connect.NewError(connect.CodeDeadlineExceeded, fmt.Errorf("process %d killed: the request's deadline passed", p.pid))
	}
	return err
}

// Connect re-attaches to a running process: start{pid}, the output it printed
// while nobody listened, then live output and the end.
func (s *Service) Connect(ctx context.Context, req *connect.Request[pb.ConnectRequest], stream *connect.ServerStream[pb.ConnectResponse]) error {
	p, err := s.mgr.find(req.Msg.GetProcess())
	if err != nil {
		return err
	}
	sub := p.out.subscribe()
	defer p.out.unsubscribe(sub)
	send := func(ev *pb.ProcessEvent) error { return stream.Send(&pb.ConnectResponse{Event: ev}) }
	err = pump(ctx, p, sub, send, keepalive(req.Header()))
	if errors.Is(err, context.DeadlineExceeded) {
		return connect.NewError(connect.CodeDeadlineExceeded, errors.New("the connection's deadline passed; the process keeps running"))
	}
	return err
}

// Update resizes a process's PTY.
func (s *Service) Update(_ context.Context, req *connect.Request[pb.UpdateRequest]) (*connect.Response[pb.UpdateResponse], error) {
	p, err := s.mgr.find(req.Msg.GetProcess())
	if err != nil {
		return nil, err
	}
	if req.Msg.Pty != nil {
		if err := p.resize(req.Msg.GetPty().GetSize()); err != nil {
			return nil, err
		}
	}
	return connect.NewResponse(&pb.UpdateResponse{}), nil
}

// StreamInput feeds a process from a client stream: start{selector}, then data.
func (s *Service) StreamInput(ctx context.Context, stream *connect.ClientStream[pb.StreamInputRequest]) (*connect.Response[pb.StreamInputResponse], error) {
	var p *proc
	for stream.Receive() {
		msg := stream.Msg()
		switch ev := msg.GetEvent().(type) {
		case *pb.StreamInputRequest_Start:
			found, err := s.mgr.find(ev.Start.GetProcess())
			if err != nil {
				return nil, err
			}
			p = found
		case *pb.StreamInputRequest_Data:
			if p == nil {
				return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("the first message must be start"))
			}
			if err := writeInput(ctx, p, ev.Data.GetInput()); err != nil {
				return nil, err
			}
		case *pb.StreamInputRequest_Keepalive:
		default:
			return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("empty stream input message"))
		}
	}
	if err := stream.Err(); err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.StreamInputResponse{}), nil
}

// SendInput writes one chunk of stdin or PTY input.
func (s *Service) SendInput(ctx context.Context, req *connect.Request[pb.SendInputRequest]) (*connect.Response[pb.SendInputResponse], error) {
	p, err := s.mgr.find(req.Msg.GetProcess())
	if err != nil {
		return nil, err
	}
	if err := writeInput(ctx, p, req.Msg.GetInput()); err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.SendInputResponse{}), nil
}

// SendSignal delivers SIGTERM or SIGKILL to a process and its group.
func (s *Service) SendSignal(_ context.Context, req *connect.Request[pb.SendSignalRequest]) (*connect.Response[pb.SendSignalResponse], error) {
	var sig syscall.Signal
	switch req.Msg.GetSignal() {
	case pb.Signal_SIGNAL_SIGKILL:
		sig = syscall.SIGKILL
	case pb.Signal_SIGNAL_SIGTERM:
		sig = syscall.SIGTERM
	default:
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("unsupported signal %v", req.Msg.GetSignal()))
	}
	p, err := s.mgr.find(req.Msg.GetProcess())
	if err != nil {
		return nil, err
	}
	if err := p.signal(sig); err != nil {
		return nil, connect.NewError(connect.CodeInternal, err)
	}
	return connect.NewResponse(&pb.SendSignalResponse{}), nil
}

// CloseStdin closes a process's stdin.
func (s *Service) CloseStdin(_ context.Context, req *connect.Request[pb.CloseStdinRequest]) (*connect.Response[pb.CloseStdinResponse], error) {
	p, err := s.mgr.find(req.Msg.GetProcess())
	if err != nil {
		return nil, err
	}
	if err := p.closeStdin(); err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.CloseStdinResponse{}), nil
}

// writeInput routes one ProcessInput to stdin or the PTY.
func writeInput(ctx context.Context, p *proc, in *pb.ProcessInput) error {
	switch v := in.GetInput().(type) {
	case *pb.ProcessInput_Stdin:
		return p.writeInput(ctx, v.Stdin, false)
	case *pb.ProcessInput_Pty:
		return p.writeInput(ctx, v.Pty, true)
	}
	return connect.NewError(connect.CodeInvalidArgument, errors.New("input needs stdin or pty bytes"))
}

// keepalive reads the keepalive interval a client asked for (0: none).
func keepalive(h http.Header) time.Duration {
	secs, err := strconv.Atoi(h.Get(KeepaliveHeader))
	if err != nil || secs <= 0 {
		return 0
	}
	return time.Duration(secs) * time.Second
}

// pump sends start{pid}, then the subscriber's events and keepalives, and
// finally the end event. It returns the context's error when ctx ends first.
func pump(ctx context.Context, p *proc, sub *subscriber, send func(*pb.ProcessEvent) error, every time.Duration) error {
	if err := send(&pb.ProcessEvent{Event: &pb.ProcessEvent_Start{Start: &pb.ProcessEvent_StartEvent{Pid: p.pid}}}); err != nil {
		return err
	}
	var tick <-chan time.Time
	if every > 0 {
		t := time.NewTicker(every)
		defer t.Stop()
		tick = t.C
	}
	alive := &pb.ProcessEvent{Event: &pb.ProcessEvent_Keepalive{Keepalive: &pb.ProcessEvent_KeepAlive{}}}
	for {
		items, end := p.out.take(sub)
		for i, it := range items {
			if err := ctx.Err(); err != nil {
				p.out.requeue(sub, items[i:])
				return err
			}
			if err := send(it.ev); err != nil {
				p.out.requeue(sub, items[i+1:])
				return err
			}
		}
		if end != nil {
			return send(end)
		}
		if len(items) > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-sub.wake:
		case <-tick:
			if err := send(alive); err != nil {
				return err
			}
		}
	}
}
