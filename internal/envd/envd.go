// Package envd assembles the daemon that runs inside every sandbox on port
// 49983: the process and filesystem Connect services, the plain HTTP routes
// (/health, /init, /envs, /metrics, /files) and the access-token check in front
// of them, as one http.Handler. The wire contract is compat/envd.md.
package envd

import (
	"context"
	"io"
	"log/slog"
	"net/http"

	"connectrpc.com/connect"

	"lelantos.dev/lelantos/internal/envd/files"
	"lelantos.dev/lelantos/internal/envd/filesystem"
	"lelantos.dev/lelantos/internal/envd/metrics"
	"lelantos.dev/lelantos/internal/envd/process"
	"lelantos.dev/lelantos/internal/envd/settings"
)

// Version is the envd protocol version this daemon fully implements; the
// control plane reports it as a sandbox's envdVersion, and the clients switch
// features on by it.
const Version = "0.6.4"

// DefaultPort is the port the daemon listens on in every sandbox.
const DefaultPort = 49983

// maxRPCMessage bounds one Connect request message (e.g. a SendInput chunk).
const maxRPCMessage = 64 << 20

// Options configure a Daemon.
type Options struct {
	// Spawner starts and reaps children (a *reaper.Reaper that is running).
	Spawner process.Spawner
	// ProcRoot is where /proc is mounted (default "/proc").
	ProcRoot string
	// DiskPath is the path whose filesystem /metrics reports (default "/").
	DiskPath string
	// Env is the environment the sandbox starts with, before /init.
	Env map[string]string
	// Logger receives the daemon's logs (default slog.Default()).
	Logger *slog.Logger
	// Console receives a copy of the output of the template's start command
	// (the process tagged process.StartCommandTag), as the sandbox's console
	// shows a container's main process; nil keeps it in the process stream only.
	Console io.Writer
}

// Daemon is one sandbox's daemon.
type Daemon struct {
	settings *settings.Settings
	procs    *process.Service
	fs       *filesystem.Service
	files    *files.Handler
	metrics  *metrics.Collector
	log      *slog.Logger
	handler  http.Handler
}

// New builds a Daemon from opts.
func New(opts Options) *Daemon {
	if opts.ProcRoot == "" {
		opts.ProcRoot = "/proc"
	}
	if opts.DiskPath == "" {
		opts.DiskPath = "/"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	st := settings.New(opts.Env)
	d := &Daemon{
		settings: st,
		procs:    process.NewService(st, opts.Spawner, opts.Logger, process.WithConsole(opts.Console)),
		fs:       filesystem.NewService(st, opts.Logger),
		files:    files.NewHandler(st, opts.Logger),
		metrics:  metrics.NewCollector(opts.ProcRoot, opts.DiskPath),
		log:      opts.Logger,
	}
	mux := http.NewServeMux()
	rpcOpts := []connect.HandlerOption{connect.WithReadMaxBytes(maxRPCMessage)}
	mux.Handle(d.procs.Handler(rpcOpts...))
	mux.Handle(d.fs.Handler(rpcOpts...))
	mux.Handle("/files", d.files)
	mux.HandleFunc("GET /health", d.health)
	mux.HandleFunc("POST /init", d.init)
	mux.HandleFunc("GET /envs", d.envs)
	mux.HandleFunc("GET /metrics", d.serveMetrics)
	d.handler = withCORS(d.withAuth(mux))
	return d
}

// Handler returns the daemon's HTTP handler.
func (d *Daemon) Handler() http.Handler { return d.handler }

// Settings returns the daemon's settings (what /init set).
func (d *Daemon) Settings() *settings.Settings { return d.settings }

// Close kills the processes the daemon started and stops its watchers.
func (d *Daemon) Close(_ context.Context) error {
	d.procs.Close()
	d.fs.Close()
	return nil
}
