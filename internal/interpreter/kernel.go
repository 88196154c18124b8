package interpreter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-zeromq/zmq4"
)

// Errors of a kernel.
var (
	// ErrKernelDied: the kernel's process ended.
	ErrKernelDied = errors.New("the kernel died")
	// ErrKernelClosed: the kernel was shut down.
	ErrKernelClosed = errors.New("the kernel was shut down")
)

// KernelOptions says how to start a kernel.
type KernelOptions struct {
	// Name is the kernelspec's name; Dirs where kernelspecs are (DefaultKernelDirs
	// when nil).
	Name string
	Dirs []string
	// Cwd is the kernel's working directory; Env its environment (KEY=VALUE).
	Cwd string
	Env []string
	// RuntimeDir holds the connection file.
	RuntimeDir string
	// ReadyTimeout bounds the wait for the kernel's first answer; default 60s.
	ReadyTimeout time.Duration
	Logger       *slog.Logger
	// Drain, when set, is code that writes its argument and a newline to
	// stdout. It is for kernels that publish a cell's output from a queue of
	// their own, so that some of it may follow the idle status that should
	// close the cell (Deno's): each execution that shows output then ends with
	// a silent run of Drain, and whatever comes before its line still belongs to
	// the execution (see Kernel.drain).
	Drain func(token string) string
}

// Kernel is one running kernel process and this server's sockets on it: shell and
// control (DEALER) and iopub (SUB). Replies and iopub messages are handed to the
// request they answer (by parent msg_id).
type Kernel struct {
	opts    KernelOptions
	spec    *KernelSpec
	conn    *ConnectionInfo
	signer  Signer
	session string
	cmd     *exec.Cmd
	log     *slog.Logger

	shell, control, iopub zmq4.Socket
	sendMu                sync.Mutex

	mu      sync.Mutex
	waiters map[string]*waiter
	closed  bool
	// dead is closed when the process has exited.
	dead   chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// envHook: the kernel applies the environment variables an execute_request
	// carries in its metadata (language.envHook) before the cell runs.
	envHook atomic.Bool
}

// waiter receives the messages whose parent is one request.
type waiter struct {
	ch   chan *Message
	done chan struct{}
}

// channel names the socket a message came on.
type channel string

const (
	chanShell   channel = "shell"
	chanIOPub   channel = "iopub"
	chanControl channel = "control"
)

// StartKernel starts the kernel opts.Name and waits until it answers.
func StartKernel(ctx context.Context, opts KernelOptions) (*Kernel, error) {
	if opts.Dirs == nil {
		opts.Dirs = DefaultKernelDirs
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 60 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	spec, err := findKernelSpec(opts.Dirs, opts.Name)
	if err != nil {
		return nil, fmt.Errorf("start kernel: %w", err)
	}
	ports, err := freePorts(5)
	if err != nil {
		return nil, fmt.Errorf("start kernel %s: %w", opts.Name, err)
	}
	k := &Kernel{
		opts: opts, spec: spec, session: newUUID(), waiters: map[string]*waiter{}, dead: make(chan struct{}),
		conn: &ConnectionInfo{IP: "127.0.0.1", Transport: "tcp", ShellPort: ports[0], IOPubPort: ports[1], StdinPort: ports[2],
			ControlPort: ports[3], HBPort: ports[4], Key: newKey(), SignatureScheme: "hmac-sha256", KernelName: opts.Name},
		log: opts.Logger.With("kernel", opts.Name),
	}
	k.signer = NewSigner(k.conn.Key)
	if err := k.launch(); err != nil {
		return nil, fmt.Errorf("start kernel %s: %w", opts.Name, err)
	}
	if err := k.connect(); err != nil {
		k.Close()
		return nil, fmt.Errorf("start kernel %s: %w", opts.Name, err)
	}
	rctx, cancel := context.WithTimeout(ctx, opts.ReadyTimeout)
	defer cancel()
	if err := k.waitReady(rctx); err != nil {
		k.Close()
		return nil, fmt.Errorf("start kernel %s: %w", opts.Name, err)
	}
	return k, nil
}

// freePorts finds n free TCP ports on the loopback address.
func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			_ = l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// launch writes the connection file and starts the kernel's process in a process
// group of its own, so that an interrupt reaches what it runs too.
func (k *Kernel) launch() error {
	if err := os.MkdirAll(k.opts.RuntimeDir, 0o700); err != nil {
		return fmt.Errorf("runtime dir: %w", err)
	}
	b, err := json.Marshal(k.conn)
	if err != nil {
		return err
	}
	path := filepath.Join(k.opts.RuntimeDir, "kernel-"+k.session+".json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("write connection file: %w", err)
	}
	argv := make([]string, len(k.spec.Argv))
	for i, a := range k.spec.Argv {
		argv[i] = strings.ReplaceAll(a, "{connection_file}", path)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = k.opts.Cwd
	cmd.Env = append([]string(nil), k.opts.Env...)
	for key, v := range k.spec.Env {
		cmd.Env = append(cmd.Env, key+"="+v)
	}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("run %s: %w", argv[0], err)
	}
	k.cmd = cmd
	pidFile := strings.TrimSuffix(path, ".json") + ".pid"
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(cmd.Process.Pid)), 0o600); err != nil {
		k.log.Warn("write the kernel's pid file", "err", err)
	}
	k.wg.Add(1)
	go func() {
		defer k.wg.Done()
		err := cmd.Wait()
		_ = os.Remove(path)
		_ = os.Remove(pidFile)
		k.mu.Lock()
		closed := k.closed
		k.mu.Unlock()
		if !closed {
			k.log.Warn("kernel exited", "pid", cmd.Process.Pid, "err", err)
		}
		close(k.dead)
	}()
	return nil
}

// connect opens the client's sockets and starts their readers.
func (k *Kernel) connect() error {
	ctx, cancel := context.WithCancel(context.Background())
	k.cancel = cancel
	opts := []zmq4.Option{zmq4.WithDialerRetry(50 * time.Millisecond), zmq4.WithDialerMaxRetries(600), zmq4.WithAutomaticReconnect(true)}
	k.shell = zmq4.NewDealer(ctx, append(opts, zmq4.WithID(zmq4.SocketIdentity(k.session)))...)
	k.control = zmq4.NewDealer(ctx, append(opts, zmq4.WithID(zmq4.SocketIdentity(k.session+"-control")))...)
	k.iopub = zmq4.NewSub(ctx, opts...)
	for _, s := range []struct {
		sock zmq4.Socket
		port int
	}{{k.iopub, k.conn.IOPubPort}, {k.shell, k.conn.ShellPort}, {k.control, k.conn.ControlPort}} {
		if err := k.dialOrDie(s.sock, k.conn.endpoint(s.port)); err != nil {
			return err
		}
	}
	if err := k.iopub.SetOption(zmq4.OptionSubscribe, ""); err != nil {
		return fmt.Errorf("subscribe to iopub: %w", err)
	}
	for ch, s := range map[channel]zmq4.Socket{chanShell: k.shell, chanIOPub: k.iopub, chanControl: k.control} {
		k.wg.Add(1)
		go k.read(ch, s)
	}
	return nil
}

// dialOrDie dials endpoint, giving up when the process ends.
func (k *Kernel) dialOrDie(s zmq4.Socket, endpoint string) error {
	done := make(chan error, 1)
	go func() { done <- s.Dial(endpoint) }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("connect to %s: %w", endpoint, err)
		}
		return nil
	case <-k.dead:
		return fmt.Errorf("connect to %s: %w", endpoint, ErrKernelDied)
	}
}

// read hands every message of one socket to its request's waiter.
func (k *Kernel) read(ch channel, s zmq4.Socket) {
	defer k.wg.Done()
	for {
		zm, err := s.Recv()
		if err != nil {
			k.mu.Lock()
			closed := k.closed
			k.mu.Unlock()
			if closed {
				return
			}
			select {
			case <-k.dead:
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		m, err := k.signer.Decode(zm.Frames)
		if err != nil {
			k.log.Warn("drop a kernel message", "channel", ch, "err", err)
			continue
		}
		m.Identities = [][]byte{[]byte(ch)} // the channel, for the waiter
		k.mu.Lock()
		w := k.waiters[m.Parent.MsgID]
		k.mu.Unlock()
		if w == nil {
			continue
		}
		select {
		case w.ch <- m:
		case <-w.done:
		}
	}
}

// ChannelOf tells which socket a message handed to a request came on.
func ChannelOf(m *Message) string {
	if len(m.Identities) == 0 {
		return ""
	}
	return string(m.Identities[0])
}

// request sends a message on shell or control and returns the waiter for what
// answers it; release it with k.release(id).
func (k *Kernel) request(ch channel, msgType string, content any) (string, *waiter, error) {
	return k.requestWith(ch, msgType, content, nil)
}

// requestWith is request with the message's metadata (nil: none).
func (k *Kernel) requestWith(ch channel, msgType string, content any, metadata map[string]any) (string, *waiter, error) {
	m, err := NewMessage(k.session, msgType, nil, content)
	if err != nil {
		return "", nil, err
	}
	if metadata != nil {
		b, err := json.Marshal(metadata)
		if err != nil {
			return "", nil, fmt.Errorf("encode %s metadata: %w", msgType, err)
		}
		m.Metadata = b
	}
	w := &waiter{ch: make(chan *Message, 256), done: make(chan struct{})}
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return "", nil, ErrKernelClosed
	}
	k.waiters[m.Header.MsgID] = w
	k.mu.Unlock()
	frames, err := k.signer.Encode(m)
	if err == nil {
		sock := k.shell
		if ch == chanControl {
			sock = k.control
		}
		k.sendMu.Lock()
		err = sock.Send(zmq4.NewMsgFrom(frames...))
		k.sendMu.Unlock()
	}
	if err != nil {
		k.release(m.Header.MsgID)
		return "", nil, fmt.Errorf("send %s: %w", msgType, err)
	}
	return m.Header.MsgID, w, nil
}

func (k *Kernel) release(id string) {
	k.mu.Lock()
	if w := k.waiters[id]; w != nil {
		close(w.done)
		delete(k.waiters, id)
	}
	k.mu.Unlock()
}

// waitReady asks for kernel_info until both the reply and an iopub message have
// arrived: then the iopub subscription is known to be in place.
func (k *Kernel) waitReady(ctx context.Context) error {
	for {
		id, w, err := k.request(chanShell, "kernel_info_request", struct{}{})
		if err != nil {
			return err
		}
		replied, published := false, false
		timer := time.NewTimer(500 * time.Millisecond)
	wait:
		for !replied || !published {
			select {
			case m := <-w.ch:
				switch ChannelOf(m) {
				case string(chanShell):
					replied = true
				case string(chanIOPub):
					published = true
				}
			case <-timer.C:
				break wait
			case <-k.dead:
				k.release(id)
				return ErrKernelDied
			case <-ctx.Done():
				k.release(id)
				return fmt.Errorf("wait for the kernel to answer: %w", ctx.Err())
			}
		}
		timer.Stop()
		k.release(id)
		if replied && published {
			return nil
		}
	}
}

// Interrupt interrupts what the kernel runs: an interrupt_request on the control
// channel when its kernelspec asks for messages, else SIGINT to its process group.
func (k *Kernel) Interrupt() error {
	if k.spec.InterruptMode == "message" {
		id, _, err := k.request(chanControl, "interrupt_request", struct{}{})
		if err != nil {
			return fmt.Errorf("interrupt kernel: %w", err)
		}
		time.AfterFunc(10*time.Second, func() { k.release(id) })
		return nil
	}
	if err := syscall.Kill(-k.cmd.Process.Pid, syscall.SIGINT); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("interrupt kernel: %w", err)
	}
	return nil
}

// Dead is closed when the kernel's process has ended.
func (k *Kernel) Dead() <-chan struct{} { return k.dead }

// Close kills the kernel's process group and closes the sockets.
func (k *Kernel) Close() {
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return
	}
	k.closed = true
	for id, w := range k.waiters {
		close(w.done)
		delete(k.waiters, id)
	}
	k.mu.Unlock()
	if k.cmd != nil && k.cmd.Process != nil {
		_ = syscall.Kill(-k.cmd.Process.Pid, syscall.SIGKILL)
	}
	if k.cancel != nil {
		k.cancel()
	}
	for _, s := range []zmq4.Socket{k.shell, k.control, k.iopub} {
		if s != nil {
			_ = s.Close()
		}
	}
	if k.cmd != nil {
		<-k.dead
	}
	k.wg.Wait()
}
