package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/term"

	"lelantos.dev/lelantos/internal/client"
)

// sandboxShell opens an interactive login shell in a sandbox on a terminal
// of our terminal's size: our terminal is put in raw mode (and restored on
// every way out), keys are sent as typed, window resizes are passed on, and
// the shell's exit status becomes ours.
func sandboxShell(ctx context.Context, args []string) error {
	var api apiFlags
	fs := sandboxFlags("shell", &api)
	user := fs.String("user", "", "the user the shell runs as (default: the sandbox's default user)")
	pos, err := parseFlags(fs, args, 0)
	if err != nil {
		return err
	}
	if err := needIDs(pos, false); err != nil {
		return err
	}
	in := int(os.Stdin.Fd())
	if !term.IsTerminal(in) {
		return errors.New("stdin is not a terminal; to run a command, use lelantos sandbox exec")
	}
	c, err := api.client()
	if err != nil {
		return err
	}
	d, err := openDaemon(ctx, c, pos[0])
	if err != nil {
		return err
	}
	termName := os.Getenv("TERM")
	if termName == "" {
		termName = "xterm-256color"
	}
	size := terminalSize(in)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		select {
		case <-hup:
			cancel()
		case <-ctx.Done():
		}
	}()
	p, err := d.Start(ctx, client.Command{Cmd: "/bin/bash", Args: []string{"-i", "-l"}, User: *user, PTY: &size,
		Envs: map[string]string{"TERM": termName, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}})
	if err != nil {
		return err
	}
	defer p.Close()
	old, err := term.MakeRaw(in)
	if err != nil {
		return err
	}
	defer func() { _ = term.Restore(in, old) }()

	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	defer signal.Stop(winch)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-winch:
				if err := p.Resize(ctx, terminalSize(in)); err != nil && ctx.Err() == nil {
					// The terminal is raw: end the line by hand.
					fmt.Fprintf(os.Stderr, "\r\nlelantos: sandbox shell: %v\r\n", err)
				}
			}
		}
	}()
	inputErr := make(chan error, 1)
	go func() { inputErr <- forwardKeys(ctx, p, os.Stdin) }()

	done := make(chan error, 1)
	var end client.End
	go func() {
		var err error
		end, err = p.Wait(os.Stdout, os.Stdout)
		done <- err
	}()
	select {
	case err = <-done:
	case err = <-inputErr:
		if err == nil {
			// Our stdin ended: the shell keeps the terminal until it exits.
			err = <-done
		}
	}
	if err != nil {
		// Without us the shell would wait for input forever.
		kctx, kcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer kcancel()
		_ = p.Signal(kctx, true)
		if ctx.Err() != nil {
			return errors.New("interrupted; the shell was killed")
		}
		return err
	}
	if code := end.Code(); code != 0 {
		return exitCode(code)
	}
	return nil
}

// terminalSize is the size of the terminal fd, 80x24 when unknown.
func terminalSize(fd int) client.Size {
	cols, rows, err := term.GetSize(fd)
	if err != nil || cols <= 0 || rows <= 0 {
		return client.Size{Cols: 80, Rows: 24}
	}
	return client.Size{Cols: uint32(cols), Rows: uint32(rows)}
}

// forwardKeys sends what is typed to the process's terminal until our stdin
// ends (nil) or a send fails (its error, unless the process has ended).
func forwardKeys(ctx context.Context, p *client.Process, in *os.File) error {
	buf := make([]byte, inputChunk)
	for {
		n, err := in.Read(buf)
		if n > 0 {
			if serr := p.SendPTY(ctx, buf[:n]); serr != nil {
				if inputRefused(serr) || ctx.Err() != nil {
					return nil
				}
				return serr
			}
		}
		if err != nil {
			return nil
		}
	}
}
