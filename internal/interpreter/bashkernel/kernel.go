// Package bashkernel is a Jupyter kernel for bash, run by the interpreter
// binary (`interpreter bash-kernel CONNECTION_FILE`): one interactive bash per
// kernel whose state lasts across cells, its output streamed as stdout and
// stderr, a non-zero exit status reported as an error, and SIGINT to the
// kernel's process group aborting the running cell.
package bashkernel

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/go-zeromq/zmq4"

	"lelantos.dev/lelantos/internal/interpreter"
)

// Kernel serves one bash over the Jupyter protocol.
type Kernel struct {
	conn    *interpreter.ConnectionInfo
	signer  interpreter.Signer
	session string
	log     *slog.Logger
	sh      *shell
	count   int

	shell, control, stdin zmq4.Socket
	iopub, hb             zmq4.Socket
}

// Run serves the kernel described by the connection file until bash exits,
// the kernel is told to shut down, or ctx ends.
func Run(ctx context.Context, connectionFile string, log *slog.Logger) error {
	conn, err := interpreter.ReadConnectionFile(connectionFile)
	if err != nil {
		return fmt.Errorf("bash kernel: %w", err)
	}
	// The interrupt is for bash and what it runs; the kernel lives on.
	ints := make(chan os.Signal, 1)
	signal.Notify(ints, syscall.SIGINT)
	defer signal.Stop(ints)
	go func() {
		for range ints {
		}
	}()
	dir, err := os.MkdirTemp("", "bash-kernel-")
	if err != nil {
		return fmt.Errorf("bash kernel: %w", err)
	}
	defer os.RemoveAll(dir)
	sh, err := startShell(dir)
	if err != nil {
		return fmt.Errorf("bash kernel: %w", err)
	}
	defer func() { _ = sh.cmd.Process.Kill() }()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	k := &Kernel{conn: conn, signer: interpreter.NewSigner(conn.Key), session: "bash-" + strconv.Itoa(os.Getpid()), log: log, sh: sh,
		shell: zmq4.NewRouter(ctx), control: zmq4.NewRouter(ctx), stdin: zmq4.NewRouter(ctx), iopub: zmq4.NewPub(ctx), hb: zmq4.NewRep(ctx)}
	for _, s := range []struct {
		sock zmq4.Socket
		port int
	}{{k.shell, conn.ShellPort}, {k.control, conn.ControlPort}, {k.stdin, conn.StdinPort}, {k.iopub, conn.IOPubPort}, {k.hb, conn.HBPort}} {
		if err := s.sock.Listen(fmt.Sprintf("%s://%s:%d", conn.Transport, conn.IP, s.port)); err != nil {
			return fmt.Errorf("bash kernel: listen on port %d: %w", s.port, err)
		}
		defer s.sock.Close()
	}
	go k.heartbeat()
	go func() {
		_ = sh.cmd.Wait()
		cancel()
	}()
	go k.serveControl(cancel)
	return k.serveShell(ctx, cancel)
}

// heartbeat echoes every ping.
func (k *Kernel) heartbeat() {
	for {
		m, err := k.hb.Recv()
		if err != nil {
			return
		}
		_ = k.hb.Send(m)
	}
}

// serveShell answers the shell channel, one request at a time.
func (k *Kernel) serveShell(ctx context.Context, cancel context.CancelFunc) error {
	for {
		zm, err := k.shell.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("bash kernel: shell: %w", err)
		}
		m, err := k.signer.Decode(zm.Frames)
		if err != nil {
			k.log.Warn("drop a message", "err", err)
			continue
		}
		k.publish("status", &m.Header, map[string]string{"execution_state": "busy"})
		switch m.Header.MsgType {
		case "kernel_info_request":
			k.reply(k.shell, m, "kernel_info_reply", kernelInfo())
		case "execute_request":
			if err := k.execute(m); err != nil {
				return err // the shell is gone: so is the kernel
			}
		case "shutdown_request":
			k.reply(k.shell, m, "shutdown_reply", map[string]any{"status": "ok", "restart": false})
			k.publish("status", &m.Header, map[string]string{"execution_state": "idle"})
			cancel()
			return nil
		default:
			k.log.Info("unsupported request", "type", m.Header.MsgType)
		}
		k.publish("status", &m.Header, map[string]string{"execution_state": "idle"})
	}
}

// serveControl answers the control channel: shutdowns and interrupts (which
// the server sends as signals; a message is answered all the same).
func (k *Kernel) serveControl(cancel context.CancelFunc) {
	for {
		zm, err := k.control.Recv()
		if err != nil {
			return
		}
		m, err := k.signer.Decode(zm.Frames)
		if err != nil {
			continue
		}
		switch m.Header.MsgType {
		case "interrupt_request":
			_ = syscall.Kill(-k.sh.cmd.Process.Pid, syscall.SIGINT)
			_ = syscall.Kill(k.sh.cmd.Process.Pid, syscall.SIGINT)
			k.reply(k.control, m, "interrupt_reply", map[string]string{"status": "ok"})
		case "shutdown_request":
			k.reply(k.control, m, "shutdown_reply", map[string]any{"status": "ok", "restart": false})
			cancel()
			return
		case "kernel_info_request":
			k.reply(k.control, m, "kernel_info_reply", kernelInfo())
		}
	}
}

// execute runs one cell; it fails only when bash has exited.
func (k *Kernel) execute(m *interpreter.Message) error {
	var req struct {
		Code   string `json:"code"`
		Silent bool   `json:"silent"`
		// StoreHistory defaults to !Silent; only a stored cell is counted.
		StoreHistory *bool `json:"store_history"`
	}
	_ = json.Unmarshal(m.Content, &req)
	if !req.Silent {
		if req.StoreHistory == nil || *req.StoreHistory {
			k.count++
		}
		k.publish("execute_input", &m.Header, map[string]any{"code": req.Code, "execution_count": k.count})
	}
	status, err := k.sh.run(req.Code, func(stream, text string) {
		if !req.Silent {
			k.publish("stream", &m.Header, map[string]string{"name": stream, "text": text})
		}
	})
	if err != nil {
		return fmt.Errorf("bash kernel: %w", err)
	}
	if status == 0 {
		k.reply(k.shell, m, "execute_reply", map[string]any{"status": "ok", "execution_count": k.count, "user_expressions": map[string]any{}})
		return nil
	}
	e := map[string]any{"ename": "ExitCode", "evalue": fmt.Sprintf("the cell ended with exit status %d", status), "traceback": []string{}}
	k.publish("error", &m.Header, e)
	e["status"], e["execution_count"] = "error", k.count
	k.reply(k.shell, m, "execute_reply", e)
	return nil
}

func kernelInfo() map[string]any {
	return map[string]any{
		"status": "ok", "protocol_version": interpreter.ProtocolVersion, "implementation": "lelantos-bash",
		"implementation_version": "1.0", "banner": "bash",
		"language_info": map[string]any{"name": "bash", "mimetype": "text/x-sh", "file_extension": ".sh"},
	}
}

// publish sends an iopub message.
func (k *Kernel) publish(msgType string, parent *interpreter.Header, content any) {
	m, err := interpreter.NewMessage(k.session, msgType, parent, content)
	if err != nil {
		return
	}
	m.Identities = [][]byte{[]byte(msgType)}
	k.send(k.iopub, m)
}

// reply answers req on sock (a ROUTER), to req's sender.
func (k *Kernel) reply(sock zmq4.Socket, req *interpreter.Message, msgType string, content any) {
	m, err := interpreter.NewMessage(k.session, msgType, &req.Header, content)
	if err != nil {
		return
	}
	m.Identities = req.Identities
	k.send(sock, m)
}

func (k *Kernel) send(sock zmq4.Socket, m *interpreter.Message) {
	frames, err := k.signer.Encode(m)
	if err != nil {
		return
	}
	if err := sock.Send(zmq4.NewMsgFrom(frames...)); err != nil {
		k.log.Warn("send", "type", m.Header.MsgType, "err", err)
	}
}
