package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"

	"lelantos.dev/lelantos/internal/client"
)

// inputChunk is the most stdin or terminal input sent in one call.
const inputChunk = 64 << 10

// openDaemon reaches the daemon of sandbox id, with a message saying what
// to do when the sandbox is paused.
func openDaemon(ctx context.Context, c *client.Client, id string) (*client.Daemon, error) {
	d, err := c.OpenDaemon(ctx, id)
	if errors.Is(err, client.ErrPaused) {
		return nil, fmt.Errorf("sandbox %q is paused: resume it first (lelantos sandbox resume %s)", id, id)
	}
	return d, err
}

// sandboxExec runs a command in a sandbox: its stdout and stderr stream to
// ours, our stdin (when it is not a terminal) to its, SIGINT and SIGTERM
// are passed on, and its exit status becomes ours.
func sandboxExec(ctx context.Context, args []string) error {
	var api apiFlags
	fs := sandboxFlags("exec", &api)
	user := fs.String("user", "", "the user the command runs as (default: the sandbox's default user)")
	cwd := fs.String("cwd", "", "the working directory (default: the user's home)")
	env := pairsFlag{}
	fs.Var(env, "env", "an environment variable KEY=VALUE (repeatable)")
	pos, err := parseFlags(fs, args, 1)
	if err != nil {
		return err
	}
	if err := needIDs(pos[:min(len(pos), 1)], false); err != nil {
		return err
	}
	if len(pos) < 2 {
		return usagef("give a command after the sandbox ID, e.g. lelantos sandbox exec %s -- ls -l", pos[0])
	}
	cmd := client.Shell(pos[1])
	if len(pos) > 2 {
		cmd = client.Command{Cmd: pos[1], Args: pos[2:]}
	}
	cmd.User, cmd.Cwd, cmd.Envs = *user, *cwd, env
	cmd.Stdin = !term.IsTerminal(int(os.Stdin.Fd()))
	c, err := api.client()
	if err != nil {
		return err
	}
	d, err := openDaemon(ctx, c, pos[0])
	if err != nil {
		return err
	}
	// Signals are passed on rather than ending the stream: the command
	// decides when it ends, and its end is what we wait for.
	sctx := context.WithoutCancel(ctx)
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	p, err := d.Start(sctx, cmd)
	if err != nil {
		return err
	}
	defer p.Close()
	if cmd.Stdin {
		go forwardStdin(sctx, p, os.Stdin)
	}
	type result struct {
		end client.End
		err error
	}
	done := make(chan result, 1)
	go func() {
		end, err := p.Wait(os.Stdout, os.Stderr)
		done <- result{end, err}
	}()
	for n := 0; ; {
		select {
		case r := <-done:
			if r.err != nil {
				return r.err
			}
			if code := r.end.Code(); code != 0 {
				return exitCode(code)
			}
			return nil
		case <-sigs:
			// SIGTERM first, SIGKILL the second time (the daemon knows no
			// other signal); the third stops waiting.
			if n++; n > 2 {
				return fmt.Errorf("stopped waiting for process %d; it may still be running", p.PID())
			}
			if err := p.Signal(sctx, n == 2); err != nil && !errors.Is(err, client.ErrNotFound) {
				fmt.Fprintf(os.Stderr, "lelantos: sandbox exec: %v\n", err)
			}
		}
	}
}

// forwardStdin sends r to the process's stdin until end-of-file, then
// closes it. It stops quietly when the process has ended or closed its
// stdin.
func forwardStdin(ctx context.Context, p *client.Process, r io.Reader) {
	buf := make([]byte, inputChunk)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if serr := p.SendStdin(ctx, buf[:n]); serr != nil {
				if !inputRefused(serr) {
					fmt.Fprintf(os.Stderr, "lelantos: sandbox exec: %v\n", serr)
				}
				return
			}
		}
		if err != nil {
			if cerr := p.CloseStdin(ctx); cerr != nil && !inputRefused(cerr) {
				fmt.Fprintf(os.Stderr, "lelantos: sandbox exec: %v\n", cerr)
			}
			return
		}
	}
}

// inputRefused reports an input call refused because the process has ended
// or does not read any more: not worth a message.
func inputRefused(err error) bool {
	return errors.Is(err, client.ErrNotFound) || errors.Is(err, client.ErrPrecondition)
}
