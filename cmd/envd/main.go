// Command envd is the daemon that runs inside every sandbox (as its init, PID 1,
// under gVisor) and serves the E2B-compatible envd protocol on port 49983:
// processes, files and the sandbox's settings. It reaps every child.
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
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"lelantos.dev/lelantos/internal/envd"
	"lelantos.dev/lelantos/internal/envd/reaper"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "envd:", err)
		os.Exit(1)
	}
}

func run() error {
	port := flag.Int("port", envd.DefaultPort, "port to listen on")
	addr := flag.String("addr", "0.0.0.0", "host address to listen on")
	verbose := flag.Bool("v", false, "log debug messages")
	version := flag.Bool("version", false, "print the protocol version and exit")
	flag.Parse()
	if *version {
		fmt.Println(envd.Version)
		return nil
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	// JSON lines on the console: the sandbox's log shows each with its level,
	// message and values, as E2B's daemon's.
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	if os.Getpid() != 1 {
		if err := reaper.BecomeSubreaper(); err != nil {
			log.Warn("orphans of started processes will not be reaped here", "err", err)
		}
	}
	r := reaper.New()
	go r.Run(context.Background())

	d := envd.New(envd.Options{Spawner: r, Logger: log, Console: os.Stdout})
	ln, err := net.Listen("tcp", net.JoinHostPort(*addr, strconv.Itoa(*port)))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: d.Handler(), ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 10 * time.Minute}
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	log.Info("envd listening", "addr", ln.Addr().String(), "version", envd.Version, "pid", os.Getpid())

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("envd shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = d.Close(shutdownCtx)
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shut down: %w", err)
	}
	return nil
}
