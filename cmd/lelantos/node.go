package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	"lelantos.dev/lelantos/internal/agent"
	"lelantos.dev/lelantos/internal/engine"
	agentv1 "lelantos.dev/lelantos/internal/gen/agent/v1"
	"lelantos.dev/lelantos/internal/gen/agent/v1/agentv1connect"
	"lelantos.dev/lelantos/internal/network"
	"lelantos.dev/lelantos/internal/runtime"
	"lelantos.dev/lelantos/internal/runtime/cgroups"
	"lelantos.dev/lelantos/internal/runtime/gvisor"
	"lelantos.dev/lelantos/internal/runtime/runc"
	"lelantos.dev/lelantos/internal/telemetry"
	"lelantos.dev/lelantos/internal/template"
)

// nodeConfig is what the local node needs.
type nodeConfig struct {
	DataDir string
	Runsc   string
	Envd    string
	// Interpreter is the code interpreter's binary, put beside envd ("" for none).
	Interpreter string
	Subnet      string
	// NetPrefix starts the node's veth and namespace names; its iptables chains are
	// named after it too ("LELANTOS" for the default "lel").
	NetPrefix string
	Logger    *slog.Logger
	// Store keeps the templates the node builds; BaseRootfs is the base
	// template's tree, which FROM base builds on.
	Store      template.Store
	BaseRootfs string
	// WarmPool is the most sandboxes any one pool keeps booted: the base pool
	// keeps min(2, WarmPool) and grows to WarmPool with its create rate, and a
	// template or shape that is created from gets a pool of up to WarmPool.
	WarmPool int
	// Limits are what the node's sandboxes may take of it.
	Limits nodeLimits
	// RuntimeClasses are the runtime classes to build: gvisor always, runc only
	// when listed.
	RuntimeClasses []string
	// DNSUpstreams are the resolvers sandboxes' DNS and the egress proxy's name
	// lookups go to; none means the host's (resolv.conf).
	DNSUpstreams []netip.AddrPort
	// Volumes are what sandboxes mount volumes from; nil refuses volume mounts.
	Volumes engine.Volumes
	// BuildCacheMB caps the template build cache (0: the builder's default,
	// negative: no cap); PrivateRegistries are the registries on private or
	// loopback addresses builds may pull images from.
	BuildCacheMB      int64
	PrivateRegistries []string
	// Metrics registers the node's metrics (nil: none); Tracing traces its
	// agent RPCs and engine steps (nil: none).
	Metrics prometheus.Registerer
	Tracing *telemetry.Tracing
	// BuildObserver is told of template builds; startNode sets it.
	BuildObserver template.Observer
	// AgentListen, when set, also serves the agent RPC on this TCP address
	// with mutual TLS, the CA and node certificate AgentCertName (default
	// clustertls.NodeName) taken from AgentTLSDir (clustertls' layout).
	AgentListen, AgentTLSDir, AgentCertName string
	// Trees, when set, finds the trees of templates named by content
	// (a node of a control plane on another machine).
	Trees agent.Trees
	// Images, when set, fetches the images of paused sandboxes the control
	// plane kept, to resume them here.
	Images agent.Images
}

// warmPools keeps up to baseWarmFloor sandboxes shaped like a default create
// from base at all times (the control plane asks for exactly this spec when a
// request sets no sizes); demand grows it up to cfg.WarmPool.
func warmPools(cfg nodeConfig) []engine.WarmPool {
	if cfg.WarmPool == 0 {
		return nil
	}
	return []engine.WarmPool{{Size: min(cfg.WarmPool, baseWarmFloor), Spec: engine.Spec{
		TemplateID: "base", RootfsPath: cfg.BaseRootfs, RuntimeClass: gvisor.Class,
		CPUCount: baseCPU, MemoryMB: baseMemoryMB, DiskSizeMB: baseDiskMB, AllowInternet: true,
	}}}
}

// baseWarmFloor is how many default base sandboxes stay booted while nobody
// creates any.
const baseWarmFloor = 2

// chainPrefix names the iptables chains of a node whose names start with netPrefix.
func chainPrefix(netPrefix string) string {
	if netPrefix == network.DefaultNamePrefix {
		return network.DefaultChainPrefix
	}
	return strings.ToUpper(netPrefix)
}

// localNode is this machine's engine served over the agent RPC on a unix socket.
type localNode struct {
	engine *engine.Engine
	dns    *network.DNSForwarder
	egress *network.EgressProxy
	// templates builds templates on the node; the control plane uses it
	// directly (the builder has no agent RPC yet).
	templates *templateNode
	server    *http.Server
	// tcpServer serves the agent over TCP with mutual TLS (nil when not).
	tcpServer *http.Server
	socket    string
	client    agentv1connect.AgentServiceClient
	// network and dirty are host-wide state the node set up, put back on Close.
	network *network.Manager
	dirty   *cgroups.DirtyPageLimit
}

// startNode builds the engine and serves it on DataDir/agent.sock. The control plane
// reaches it only through the returned client, as it would reach a remote node.
func startNode(ctx context.Context, cfg nodeConfig) (*localNode, error) {
	subnet, err := netip.ParsePrefix(cfg.Subnet)
	if err != nil {
		return nil, fmt.Errorf("--subnet: %w", err)
	}
	obs, err := newNodeObservers(cfg.Metrics, cfg.Tracing)
	if err != nil {
		return nil, fmt.Errorf("start node: %w", err)
	}
	cfg.BuildObserver = obs.builds
	nodeDir := filepath.Join(cfg.DataDir, "node")
	nm, err := network.NewManager(ctx, network.Config{StateDir: filepath.Join(nodeDir, "network"), Subnet: subnet, NamePrefix: cfg.NetPrefix, ChainPrefix: chainPrefix(cfg.NetPrefix)})
	if err != nil {
		return nil, fmt.Errorf("start node: %w", err)
	}
	dirty, err := cgroups.LimitDirtyPages(filepath.Join(nodeDir, "dirty-pages.json"))
	if err != nil {
		cfg.Logger.Warn("cannot cap the host's dirty page cache; large writes may OOM sandboxes", "err", err)
	} else if dirty.Changed() {
		cfg.Logger.Info("capped the host's dirty page cache (vm.dirty_bytes) so large writes in sandboxes are written back before their memory fills; put back when the server stops")
	}
	started := false
	defer func() {
		if !started && dirty != nil {
			_ = dirty.Restore()
		}
	}()
	runtimes := map[string]runtime.Runtime{}
	g, err := gvisor.New(gvisor.Options{Runsc: cfg.Runsc, StateDir: filepath.Join(nodeDir, "runsc")})
	if err != nil {
		return nil, fmt.Errorf("start node: %w (run scripts/install-runsc.sh, or pass --runsc)", err)
	}
	runtimes[gvisor.Class] = g
	if slices.Contains(cfg.RuntimeClasses, runc.Class) {
		r, err := runc.New(runc.Options{StateDir: filepath.Join(nodeDir, "runc")})
		if err != nil {
			return nil, fmt.Errorf("start node: --runtime-classes %s: %w", runc.Class, err)
		}
		runtimes[runc.Class] = r
	}
	opts := engine.Options{
		DataDir: nodeDir, Runtimes: runtimes, DefaultClass: gvisor.Class, Network: nm,
		EnvdPath: cfg.Envd, InterpreterPath: cfg.Interpreter, Logger: cfg.Logger, Warm: warmPools(cfg), WarmMax: cfg.WarmPool,
		Volumes: cfg.Volumes, Observer: obs.engine, TracerProvider: obs.tracer,
	}
	cfg.Limits.applyEngine(&opts)
	eng, err := engine.New(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("start node: %w", err)
	}
	if err := obs.collect(eng); err != nil {
		eng.Close()
		return nil, fmt.Errorf("start node: %w", err)
	}
	// Sandboxes allowed on the internet get DNS through the host's resolvers.
	dns, err := nm.StartDNS(ctx, network.DNSOptions{Logger: cfg.Logger, SandboxRate: cfg.Limits.dnsRate, SandboxBurst: cfg.Limits.dnsBurst,
		Upstreams: cfg.DNSUpstreams})
	if err != nil {
		return nil, fmt.Errorf("start node: %w", err)
	}
	// Sandboxes with domain rules reach ports 80 and 443 through the egress proxy,
	// which looks names up where their DNS does.
	egress, err := nm.StartEgressProxy(ctx, network.EgressProxyOptions{Logger: cfg.Logger, Upstreams: dns.Upstreams()})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("start node: %w", err), dns.Close(ctx))
	}
	closeNet := func() error { return errors.Join(egress.Close(ctx), dns.Close(ctx)) }
	// A node without a store (lelantos node) builds no templates: its
	// control plane's node does.
	var templates *templateNode
	if cfg.Store != nil {
		if templates, err = startTemplates(cfg, nodeDir, eng, g, nm); err != nil {
			return nil, errors.Join(fmt.Errorf("start node: %w", err), closeNet())
		}
	}
	socket := filepath.Join(cfg.DataDir, "agent.sock")
	_ = os.Remove(socket)
	ln, err := net.Listen("unix", socket)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("start node: %w", err), templates.close(), closeNet())
	}
	mux := http.NewServeMux()
	agentSrv := agent.NewServer(eng, build())
	if cfg.Trees != nil {
		agentSrv.WithTrees(cfg.Trees)
	}
	if cfg.Images != nil {
		agentSrv.WithImages(cfg.Images)
	}
	mux.Handle(agentSrv.Handler(obs.server...))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			cfg.Logger.Error("agent server", "err", err)
		}
	}()
	tcp, err := serveAgentTLS(cfg, agentSrv.Tunnel(agentSrv.Images(mux)))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("start node: %w", err), srv.Close(), templates.close(), closeNet())
	}
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConnsPerHost: 64,
	}}
	started = true
	return &localNode{engine: eng, dns: dns, egress: egress, templates: templates, server: srv, tcpServer: tcp, socket: socket, client: agent.NewClient(hc, "http://agent", obs.client...),
		network: nm, dirty: dirty}, nil
}

// close closes t, which is nil on a node that builds no templates.
func (t *templateNode) close() error {
	if t == nil {
		return nil
	}
	return t.Close()
}

// Close stops the node's servers and background work. Sandboxes keep running and are
// re-adopted at the next start; pooled ones are removed (they boot again quickly).
// What the node changed on the host is put back: the dirty page cap always, the
// firewall and ip_forward when no sandbox is left that needs them.
func (n *localNode) Close(ctx context.Context) error {
	terr := n.templates.close()
	err := errors.Join(terr, n.server.Shutdown(ctx), n.engine.DrainPools(ctx))
	if n.tcpServer != nil {
		err = errors.Join(err, n.tcpServer.Shutdown(ctx))
	}
	n.engine.Close()
	_ = os.Remove(n.socket)
	err = errors.Join(err, n.egress.Close(ctx), n.dns.Close(ctx))
	if uerr := n.network.Uninstall(ctx); uerr != nil && !errors.Is(uerr, network.ErrInUse) {
		err = errors.Join(err, uerr)
	}
	if n.dirty != nil {
		err = errors.Join(err, n.dirty.Restore())
	}
	return err
}

// proxyAwareNode tells the sandbox proxy to drop its idle connections to sandboxes
// whenever one is paused, resumed, forked or snapshotted (they do not survive a
// checkpoint), and every
// connection to a sandbox that is killed, so that its streams end at once.
type proxyAwareNode struct {
	agentv1connect.AgentServiceClient
	dropIdle    func()
	dropSandbox func(id string)
}

func (n proxyAwareNode) KillSandbox(ctx context.Context, r *connect.Request[agentv1.KillSandboxRequest]) (*connect.Response[agentv1.KillSandboxResponse], error) {
	// Before, so that streams end as the kill starts (the control plane has
	// stopped routing to the sandbox), and after, for any opened meanwhile.
	n.dropSandbox(r.Msg.GetSandboxId())
	defer n.dropSandbox(r.Msg.GetSandboxId())
	return n.AgentServiceClient.KillSandbox(ctx, r)
}

func (n proxyAwareNode) PauseSandbox(ctx context.Context, r *connect.Request[agentv1.PauseSandboxRequest]) (*connect.Response[agentv1.PauseSandboxResponse], error) {
	defer n.dropIdle()
	return n.AgentServiceClient.PauseSandbox(ctx, r)
}

func (n proxyAwareNode) ResumeSandbox(ctx context.Context, r *connect.Request[agentv1.ResumeSandboxRequest]) (*connect.Response[agentv1.ResumeSandboxResponse], error) {
	defer n.dropIdle()
	return n.AgentServiceClient.ResumeSandbox(ctx, r)
}

// ForkSandbox and SnapshotSandbox checkpoint the source in place: its
// connections are cut too.
func (n proxyAwareNode) ForkSandbox(ctx context.Context, r *connect.Request[agentv1.ForkSandboxRequest]) (*connect.Response[agentv1.ForkSandboxResponse], error) {
	defer n.dropIdle()
	return n.AgentServiceClient.ForkSandbox(ctx, r)
}

func (n proxyAwareNode) SnapshotSandbox(ctx context.Context, r *connect.Request[agentv1.SnapshotSandboxRequest]) (*connect.Response[agentv1.SnapshotSandboxResponse], error) {
	defer n.dropIdle()
	return n.AgentServiceClient.SnapshotSandbox(ctx, r)
}
