package interpreter_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"

	"lelantos.dev/lelantos/internal/interpreter"
)

// lateKernelEnv, when set, makes the test binary a kernel that publishes as
// Deno's does: a cell's stream output goes through a queue that lags behind
// the cell's reply and idle status, and is published under the parent of the
// request being served when it leaves the queue. A cell "print X" prints X.
const lateKernelEnv = "INTERPRETER_TEST_LATE_KERNEL"

// lateKernelDelay is how far the queue lags.
const lateKernelDelay = 150 * time.Millisecond

// runLateKernel serves the late kernel on the connection file until killed.
func runLateKernel(connectionFile string) error {
	conn, err := interpreter.ReadConnectionFile(connectionFile)
	if err != nil {
		return err
	}
	ctx := context.Background()
	signer := interpreter.NewSigner(conn.Key)
	shell, iopub, control, hb := zmq4.NewRouter(ctx), zmq4.NewPub(ctx), zmq4.NewRouter(ctx), zmq4.NewRep(ctx)
	for sock, port := range map[zmq4.Socket]int{shell: conn.ShellPort, iopub: conn.IOPubPort, control: conn.ControlPort, hb: conn.HBPort} {
		if err := sock.Listen(fmt.Sprintf("tcp://%s:%d", conn.IP, port)); err != nil {
			return err
		}
	}
	go func() {
		for {
			m, err := hb.Recv()
			if err != nil {
				return
			}
			_ = hb.Send(m)
		}
	}()
	var mu sync.Mutex // sends on iopub, and current
	var current interpreter.Header
	send := func(sock zmq4.Socket, ids [][]byte, msgType string, parent interpreter.Header, content any) {
		m, err := interpreter.NewMessage("late", msgType, &parent, content)
		if err != nil {
			return
		}
		m.Identities = ids
		frames, err := signer.Encode(m)
		if err == nil {
			_ = sock.Send(zmq4.NewMsgFrom(frames...))
		}
	}
	queue := make(chan string, 64)
	go func() {
		for text := range queue {
			time.Sleep(lateKernelDelay)
			mu.Lock()
			send(iopub, nil, "stream", current, map[string]string{"name": "stdout", "text": text + "\n"})
			mu.Unlock()
		}
	}()
	for {
		zm, err := shell.Recv()
		if err != nil {
			return err
		}
		req, err := signer.Decode(zm.Frames)
		if err != nil {
			continue
		}
		mu.Lock()
		current = req.Header
		send(iopub, nil, "status", req.Header, map[string]string{"execution_state": "busy"})
		mu.Unlock()
		switch req.Header.MsgType {
		case "kernel_info_request":
			send(shell, req.Identities, "kernel_info_reply", req.Header, map[string]any{"status": "ok", "protocol_version": interpreter.ProtocolVersion})
		case "execute_request":
			var c struct {
				Code string `json:"code"`
			}
			_ = json.Unmarshal(req.Content, &c)
			mu.Lock()
			send(iopub, nil, "execute_input", req.Header, map[string]any{"code": c.Code, "execution_count": 1})
			mu.Unlock()
			if text, ok := strings.CutPrefix(c.Code, "print "); ok {
				queue <- text
			}
			send(shell, req.Identities, "execute_reply", req.Header, map[string]any{"status": "ok", "execution_count": 1})
		}
		mu.Lock()
		send(iopub, nil, "status", req.Header, map[string]string{"execution_state": "idle"})
		mu.Unlock()
	}
}

// TestDrainKeepsLateOutputWithItsCell runs cells in a kernel whose output
// lags behind its idle status: without a drain the output is lost to the
// cell (the test shows it), with one each cell gets its own output and none
// of the drain's.
func TestDrainKeepsLateOutputWithItsCell(t *testing.T) {
	dirs := kernelDirs(t)
	cases := []struct {
		name  string
		drain func(string) string
		want  []string
	}{
		{"without a drain the late output is lost", nil, []string{"", ""}},
		{"with a drain each cell has its own", func(tok string) string { return "print " + tok }, []string{"first\n", "second\n"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			k, err := interpreter.StartKernel(ctx, interpreter.KernelOptions{Name: "late", Dirs: dirs, Cwd: t.TempDir(),
				RuntimeDir: t.TempDir(), Drain: tc.drain})
			if err != nil {
				t.Fatal(err)
			}
			defer k.Close()
			for i, code := range []string{"print first", "print second"} {
				lines, reply, err := run(t, ctx, k, code)
				if err != nil || reply == nil || reply.Status != "ok" {
					t.Fatalf("%s: reply %+v, err %v", code, reply, err)
				}
				if got := stdout(lines); got != tc.want[i] {
					t.Errorf("%s: stdout %q, want %q", code, got, tc.want[i])
				}
				counts := 0
				for _, l := range lines {
					if l["type"] == "number_of_executions" {
						counts++
					}
				}
				if counts != 1 {
					t.Errorf("%s: %d execution counts in %v, want the cell's own only", code, counts, lines)
				}
			}
			if tc.drain == nil {
				time.Sleep(2 * lateKernelDelay) // let the late lines go before the kernel does
			}
		})
	}
}

func init() {
	if os.Getenv(lateKernelEnv) != "" {
		if err := runLateKernel(os.Args[len(os.Args)-1]); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
}
