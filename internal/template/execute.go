package template

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"lelantos.dev/lelantos/internal/network"
	"lelantos.dev/lelantos/internal/runtime"
	"lelantos.dev/lelantos/internal/saferoot"
)

// execute runs the sandbox to its end with a network that reaches the internet
// (or nothing, without internet), copying its output into the log as it comes.
func (b *Builder) execute(ctx context.Context, id string, cfg runtime.Config, internet bool, log io.Writer) (runtime.Exit, error) {
	ctx, cancel := context.WithTimeout(ctx, b.opts.RunTimeout)
	defer cancel()
	fail := runtime.Exit{Code: -1}
	ep, err := b.opts.Network.Setup(ctx, id, network.Options{AllowInternet: internet})
	if err != nil {
		return fail, fmt.Errorf("run: %w", err)
	}
	defer func() {
		if err := b.opts.Network.Teardown(context.WithoutCancel(ctx), id); err != nil {
			b.opts.Logger.Error("tear down build network", "sandbox", id, "err", err)
		}
	}()
	cfg.NetNSPath = ep.NetNSPath
	if err := os.WriteFile(cfg.ConsolePath, nil, 0o600); err != nil {
		return fail, fmt.Errorf("run: %w", err)
	}
	console, err := os.Open(cfg.ConsolePath)
	if err != nil {
		return fail, fmt.Errorf("run: %w", err)
	}
	defer console.Close()
	rt := b.opts.Runtime
	if err := rt.Start(ctx, id, cfg); err != nil {
		_, _ = io.Copy(log, console)
		return fail, fmt.Errorf("run: %w", err)
	}
	defer func() {
		if err := rt.Kill(context.WithoutCancel(ctx), id); err != nil && !errors.Is(err, runtime.ErrNotFound) {
			b.opts.Logger.Error("remove build sandbox", "sandbox", id, "err", err)
		}
	}()
	type waited struct {
		exit runtime.Exit
		err  error
	}
	done := make(chan waited, 1)
	go func() {
		exit, err := rt.Wait(ctx, id)
		done <- waited{exit, err}
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			_, _ = io.Copy(log, console)
		case w := <-done:
			_, _ = io.Copy(log, console)
			switch {
			case w.err != nil && ctx.Err() != nil:
				return fail, fmt.Errorf("%w: the command did not finish: %w", ErrStepFailed, ctx.Err())
			case w.err != nil:
				return fail, fmt.Errorf("run: %w", w.err)
			case w.exit.OOMKilled:
				return fail, fmt.Errorf("%w: the command ran out of memory (%d MB)", ErrStepFailed, cfg.MemoryMB)
			}
			return w.exit, nil
		}
	}
}

// runArgs is the sandbox's first process: as root, a shell enters the working
// directory and execs the command, as the step's user through setpriv when that is
// not root. The command's exit status is so the sandbox's.
func runArgs(tree *saferoot.Root, cmd []string, cwd string, a *account) ([]string, error) {
	args := []string{"/bin/sh", "-c", `cd -- "$1" || exit; shift; exec "$@"`, "sh", cwd}
	if a.UID != 0 || a.GID != 0 {
		setpriv := ""
		for _, p := range []string{"/usr/bin/setpriv", "/bin/setpriv", "/usr/sbin/setpriv", "/sbin/setpriv"} {
			if isFileIn(tree, p) {
				setpriv = p
				break
			}
		}
		if setpriv == "" {
			return nil, fmt.Errorf("%w: RUN as user %d needs setpriv (util-linux) in the image", ErrInvalid, a.UID)
		}
		groups := "--clear-groups"
		if len(a.Groups) > 0 {
			var g []string
			for _, n := range a.Groups {
				g = append(g, strconv.Itoa(n))
			}
			groups = "--groups=" + strings.Join(g, ",")
		}
		args = append(args, setpriv, "--reuid="+strconv.Itoa(a.UID), "--regid="+strconv.Itoa(a.GID), groups, "--")
	}
	return append(args, cmd...), nil
}

// runEnv is the environment of a RUN command: ENV, then ARGs ENV does not shadow,
// with Docker's defaults for PATH and HOME.
func (s *buildState) runEnv(a *account) []string {
	env := append([]string(nil), s.cfg.Env...)
	for _, k := range sortedKeys(s.args) {
		if _, ok := s.cfg.getenv(k); !ok {
			env = append(env, k+"="+s.args[k])
		}
	}
	if _, ok := s.cfg.getenv("PATH"); !ok {
		env = append(env, "PATH="+defaultPath)
	}
	if _, ok := s.cfg.getenv("HOME"); !ok {
		env = append(env, "HOME="+a.Home)
	}
	return env
}

func shortCmd(s string) string {
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
