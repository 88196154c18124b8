// Command interpreter is the code interpreter's execution server, run inside
// sandboxes of the code-interpreter template (bind-mounted read-only at
// /lelantos/interpreter like envd): `interpreter serve` answers the
// @e2b/code-interpreter clients on port 49999 and drives Jupyter kernels;
// `interpreter bash-kernel CONNECTION_FILE` is the bash kernel it ships.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"lelantos.dev/lelantos/internal/interpreter"
	"lelantos.dev/lelantos/internal/interpreter/bashkernel"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	args := os.Args[1:]
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(ctx, args, log)
	case "supervise":
		err = supervise(ctx, args, log)
	case "bash-kernel":
		if len(args) != 1 {
			err = errors.New("usage: interpreter bash-kernel CONNECTION_FILE")
			break
		}
		err = bashkernel.Run(ctx, args[0], log.With("kernel", "bash"))
	default:
		err = fmt.Errorf("unknown command %q (serve, supervise, bash-kernel)", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "interpreter:", err)
		os.Exit(1)
	}
}

func serve(ctx context.Context, args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	listen := fs.String("listen", "0.0.0.0:49999", "address of the HTTP API")
	envd := fs.String("envd", "http://127.0.0.1:49983", "base URL of the sandbox's daemon, which checks X-Access-Token and gives the sandbox's env vars (empty: no check)")
	cwd := fs.String("cwd", "/home/user", "working directory of contexts that name none")
	runtimeDir := fs.String("runtime-dir", "/run/lelantos-interpreter", "directory of the kernels' connection files")
	defaults := fs.String("default-languages", "python,javascript", "languages whose default context starts with the server")
	kernelDirs := fs.String("kernel-dirs", strings.Join(interpreter.DefaultKernelDirs, ":"), "where kernelspecs are, first match first")
	detach := fs.String("detach", "", "start the server under a supervisor that restarts it, in a session of its own, logging to this file, and return at once (for start commands run through sudo, whose session ends)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve: unexpected argument %q", fs.Arg(0))
	}
	if *detach != "" {
		return detachServer(*detach, args)
	}
	interpreter.ReapStaleKernels(*runtimeDir, log)
	m := interpreter.NewManager(interpreter.Options{
		KernelDirs: strings.Split(*kernelDirs, ":"), RuntimeDir: *runtimeDir, DefaultCwd: *cwd,
		KernelEnv: kernelEnv(), Logger: log,
	})
	defer m.Close()
	for _, lang := range strings.Split(*defaults, ",") {
		if lang = strings.TrimSpace(lang); lang == "" {
			continue
		}
		start := time.Now()
		c, err := m.Default(ctx, lang)
		if err != nil {
			log.Error("start a default context", "language", lang, "err", err)
			continue
		}
		if err := m.WarmUp(ctx, c); err != nil {
			log.Warn("warm up a default context", "language", lang, "err", err)
		}
		log.Info("default context ready", "language", lang, "took", time.Since(start).Round(time.Millisecond))
	}
	var ec *interpreter.EnvdClient
	if *envd != "" {
		// Idle connections to the daemon are kept for as long as it keeps them:
		// the one Connect opens before the snapshot serves the first execution.
		tr := &http.Transport{IdleConnTimeout: 0, MaxIdleConnsPerHost: 4}
		ec = &interpreter.EnvdClient{URL: strings.TrimSuffix(*envd, "/"), HTTP: &http.Client{Transport: tr}}
		if err := ec.Connect(ctx); err != nil {
			log.Warn("connect to the sandbox's daemon", "err", err)
		}
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("serve: --listen: %w", err)
	}
	srv := &http.Server{Handler: interpreter.NewServer(m, ec, log).Handler(), ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 640 * time.Second}
	errs := make(chan error, 1)
	go func() { errs <- srv.Serve(ln) }()
	log.Info("code interpreter listening", "addr", ln.Addr().String())
	select {
	case <-ctx.Done():
	case err := <-errs:
		return fmt.Errorf("serve: %w", err)
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shut)
}

// kernelEnv is the kernels' environment: the server's, as root in /root with a
// UTF-8 locale and /usr/local/bin on the PATH.
func kernelEnv() []string {
	env := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	for k, v := range map[string]string{"HOME": "/root", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "SHELL": "/bin/bash",
		"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"} {
		if k == "HOME" || env[k] == "" || k == "PATH" {
			env[k] = v
		}
	}
	for _, k := range []string{"SUDO_COMMAND", "SUDO_USER", "SUDO_UID", "SUDO_GID"} {
		delete(env, k)
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// detachServer starts `interpreter supervise` with args less --detach in a
// new session, its output appended to logPath, and does not wait for it.
func detachServer(logPath string, args []string) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("serve: --detach: %w", err)
	}
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--detach" || a == "-detach":
			i++
		case strings.HasPrefix(a, "--detach=") || strings.HasPrefix(a, "-detach="):
		default:
			rest = append(rest, a)
		}
	}
	logf, err := os.OpenFile(logPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("serve: --detach: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(self, append([]string{"supervise"}, rest...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("serve: --detach: %w", err)
	}
	return cmd.Process.Release()
}

// supervise runs `interpreter serve args` and starts it again whenever it
// ends, after a delay that grows while it keeps failing fast, until ctx ends
// (SIGTERM), which it passes on.
func supervise(ctx context.Context, args []string, log *slog.Logger) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("supervise: %w", err)
	}
	delay := time.Second
	for {
		cmd := exec.Command(self, append([]string{"serve"}, args...)...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		start := time.Now()
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("supervise: %w", err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-ctx.Done():
			_ = cmd.Process.Signal(syscall.SIGTERM)
			<-done
			return nil
		case err := <-done:
			if time.Since(start) > time.Minute {
				delay = time.Second
			}
			log.Error("the code interpreter server ended; starting it again", "err", err, "in", delay)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(2*delay, 30*time.Second)
	}
}
