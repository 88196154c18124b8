package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	apispec "lelantos.dev/lelantos/api"
	"lelantos.dev/lelantos/internal/api"
	"lelantos.dev/lelantos/internal/controlplane"
	"lelantos.dev/lelantos/internal/envd"
	"lelantos.dev/lelantos/internal/proxy"
	"lelantos.dev/lelantos/internal/store"
	"lelantos.dev/lelantos/internal/template"
	"lelantos.dev/lelantos/internal/volume"
)

// serveFlags are serve's options.
type serveFlags struct {
	listen, sandboxListen, tlsListen string
	warmPool                         int
	// warmPoolInterpreter is the warm pool of the code-interpreter-v1 template.
	warmPoolInterpreter int
	// builtinNames lists the built-in templates to build ("all" or names, "none").
	builtinNames                    string
	domain, dataDir                 string
	baseRootfs, runsc, envd, subnet string
	// store is where the store is (--store): a PostgreSQL URL or a SQLite
	// path; "" is the data directory's lelantos.db.
	store string
	// interpreter is the code interpreter's server binary ("" when absent:
	// the templates that run it are not built).
	interpreter string
	netPrefix   string
	// clientModules is a node_modules directory holding the e2b client, written
	// into client.env as NODE_PATH ("" writes none).
	clientModules string
	// runtimeClasses are the runtime classes built and offered (--runtime-classes).
	runtimeClasses []string
	// teamQuotas are the quotas of teams that set none (--team-max-*).
	teamQuotas store.Quotas
	// pausedRetention is how long a sandbox may stay paused (0: forever).
	pausedRetention time.Duration
	// limits are what the node's sandboxes may take of it (capacity, logs, DNS).
	limits nodeLimits
	// volumeSizeMB is the size of a volume whose create gives none.
	volumeSizeMB int
	// dnsUpstreams are the resolvers for sandboxes (--dns-upstream); none: the host's.
	dnsUpstreams []netip.AddrPort
	// buildCacheMB caps the template build cache (--build-cache-mb);
	// privateRegistries may be on private addresses (--private-registry).
	buildCacheMB      int64
	privateRegistries []string
	// telemetry is where metrics and traces go (--metrics-listen, --otlp-endpoint).
	telemetry telemetryFlags
	// agentListen is where the node's agent RPC is also served over TCP with
	// mutual TLS, with the certificates of agentTLSDir ("": the unix socket
	// only).
	agentListen, agentTLSDir string
	// clusterListen is where nodes elsewhere (lelantos node) report, with
	// mutual TLS and the certificates of clusterTLSDir ("": no remote nodes).
	clusterListen, clusterTLSDir string
	// noNode runs no node in the server: sandboxes run on the nodes that
	// report (--no-node).
	noNode bool
	// reusePort opens the listeners with SO_REUSEPORT, so that several
	// replicas on one machine share their addresses (--reuse-port).
	reusePort bool
	// adminKeyFile holds an operator's admin key (--admin-key-file), which
	// replaces the one made at the first start.
	adminKeyFile string
	// imagesDir keeps the images of sandboxes paused on remote nodes
	// (--images-dir; default DATA/images); replicas share one.
	imagesDir string
	// cacheDir keeps what is built once per machine (--cache-dir): the
	// built trees of the built-in templates, under templates/.
	cacheDir string
	// builtinDefs are the built-in templates to build; nil means
	// defaultBuiltinDefs (tests give their own).
	builtinDefs *builtinDefs
}

func serve(ctx context.Context, args []string) error {
	var f serveFlags
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.StringVar(&f.listen, "listen", "127.0.0.1:3000", "address of the API")
	fs.StringVar(&f.sandboxListen, "sandbox-listen", "127.0.0.1:3001", "address of the sandbox proxy (plain HTTP, routed by E2b-Sandbox-* headers or host)")
	fs.StringVar(&f.tlsListen, "tls-listen", "127.0.0.1:443", "address of the sandbox proxy's TLS listener, used with --domain (the clients' https://<port>-<id>.DOMAIN URLs use port 443)")
	fs.StringVar(&f.builtinNames, "builtin-templates", "all", `built-in templates to build in the background after start: "all", "none" or a comma list (e.g. code-interpreter-v1)`)
	fs.IntVar(&f.warmPoolInterpreter, "warm-pool-interpreter", 1, "code-interpreter-v1 sandboxes kept booted (restored from its snapshot) once the template is built (0 turns the pool off)")
	fs.IntVar(&f.volumeSizeMB, "volume-size-mb", 1024, "size (MiB) of a volume whose create gives none; each is a sparse file of that size under the data directory")
	fs.IntVar(&f.warmPool, "warm-pool", 10, "most sandboxes of one template and shape kept booted so that creates only initialize one: the base pool keeps 2 and grows to this with the recent create rate (0 turns the pools off)")
	fs.StringVar(&f.domain, "domain", "", "serve sandboxes as https://<port>-<id>.DOMAIN with a generated CA (needs wildcard DNS to this machine)")
	fs.StringVar(&f.dataDir, "data-dir", "", "data directory (default $LELANTOS_DATA_DIR or ./.lelantos)")
	fs.StringVar(&f.cacheDir, "cache-dir", defaultCacheDir(), "directory of what is built once per machine and shared by data directories, the scripts' $LELANTOS_CACHE_DIR (else /var/cache/lelantos): built-in templates' trees are kept in its templates/ (\"\" keeps none)")
	fs.StringVar(&f.store, "store", storeFlag(), storeUsage)
	fs.StringVar(&f.baseRootfs, "base-rootfs", "", "root filesystem of the base template (scripts/build-base.sh prints it)")
	fs.StringVar(&f.runsc, "runsc", defaultRunsc(), "path of the runsc binary")
	fs.StringVar(&f.envd, "envd", defaultEnvd(), "path of the envd binary run inside sandboxes")
	fs.StringVar(&f.interpreter, "interpreter", defaultInterpreter(), "path of the code interpreter's server binary, run inside sandboxes of the code-interpreter-v1 template")
	fs.StringVar(&f.subnet, "subnet", "10.231.0.0/16", "addresses for sandboxes, a /30 each")
	fs.StringVar(&f.clientModules, "client-modules", "", "a node_modules directory with the e2b client, written into client.env as NODE_PATH so that node finds it from any directory (make run passes the one it installs)")
	classes := fs.String("runtime-classes", "gvisor", runtimeClassesUsage)
	fs.IntVar(&f.teamQuotas.MaxSandboxes, "team-max-sandboxes", 0, "running sandboxes a team may have at once, for teams without their own quota (lelantos teams set); 0 = unlimited")
	fs.IntVar(&f.teamQuotas.MaxVCPU, "team-max-vcpu", 0, "vCPUs a team's running sandboxes may have together, for teams without their own quota; 0 = unlimited")
	fs.IntVar(&f.teamQuotas.MaxMemoryMB, "team-max-memory-mb", 0, "memory (MB) a team's running sandboxes may have together, for teams without their own quota; 0 = unlimited")
	fs.IntVar(&f.teamQuotas.MaxBuilds, "team-max-builds", 0, "template builds a team may run at once, for teams without their own quota; 0 = unlimited")
	fs.DurationVar(&f.pausedRetention, "paused-retention", controlplane.DefaultPausedRetention, "how long a sandbox may stay paused before it is killed and its checkpoint removed (e.g. 168h); 0 keeps paused sandboxes until they are killed")
	fs.StringVar(&f.netPrefix, "net-prefix", "lel", "prefix of this node's veth and namespace names (and, upper-cased, its iptables chains); a second server on one machine needs its own, and its own --subnet")
	fs.StringVar(&f.agentListen, "agent-listen", "", "also serve this node's agent RPC on this TCP address, with mutual TLS only (needs --agent-tls-dir)")
	fs.StringVar(&f.agentTLSDir, "agent-tls-dir", "", "directory of the cluster CA and this node's certificate for --agent-listen (lelantos certs init writes one); callers need a control-plane certificate of that CA")
	fs.StringVar(&f.clusterListen, "cluster-listen", "", "take nodes running elsewhere (lelantos node): serve the cluster endpoint they report to on this TCP address, with mutual TLS only (needs --cluster-tls-dir)")
	fs.StringVar(&f.clusterTLSDir, "cluster-tls-dir", "", "directory of the cluster CA and this control plane's certificate (control-plane.pem, issued for the --cluster-listen host) for --cluster-listen and the calls to nodes")
	fs.BoolVar(&f.noNode, "no-node", false, "run no node in this server (a control-plane replica): sandboxes run on the nodes that report to --cluster-listen; templates are not built and volumes cannot be mounted")
	fs.BoolVar(&f.reusePort, "reuse-port", false, "open --listen, --sandbox-listen, --tls-listen and --cluster-listen with SO_REUSEPORT, so that replicas on one machine share those addresses (the kernel spreads connections over them)")
	fs.StringVar(&f.adminKeyFile, "admin-key-file", "", "file holding the admin key to register instead of making one (e2b_ and 40 hex digits, e.g. a mounted Kubernetes Secret); a revoked one stays revoked")
	fs.StringVar(&f.imagesDir, "images-dir", "", "where the images of sandboxes paused on other nodes are kept, so that they can resume elsewhere (default DATA/images; replicas on one machine share one)")
	f.limits.register(fs)
	f.telemetry.register(fs)
	fs.Func("dns-upstream", "a resolver (address:port) for sandboxes' DNS and the egress proxy's name lookups, instead of the host's (/etc/resolv.conf); repeat for more, tried in order", func(v string) error {
		ap, err := netip.ParseAddrPort(v)
		if err != nil {
			return fmt.Errorf("want address:port, e.g. 192.0.2.53:53: %w", err)
		}
		f.dnsUpstreams = append(f.dnsUpstreams, ap)
		return nil
	})
	fs.Int64Var(&f.buildCacheMB, "build-cache-mb", template.DefaultCacheMaxBytes>>20, "MiB the template build cache (cached layers and uploaded files) may take; the least recently used entries past it are removed after builds and every 10 minutes (-1: no cap)")
	fs.Func("private-registry", "a registry (host:port as in image references) on a loopback or private address that builds may pull images from; all others must be on public addresses; repeat for more", func(v string) error {
		if v == "" || strings.ContainsAny(v, "/ ") {
			return fmt.Errorf("want host or host:port, got %q", v)
		}
		f.privateRegistries = append(f.privateRegistries, v)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	if f.buildCacheMB == 0 || f.buildCacheMB < -1 {
		return fmt.Errorf("serve: --build-cache-mb %d must be positive, or -1 for no cap", f.buildCacheMB)
	}
	if err := f.limits.check(); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if f.warmPoolInterpreter < 0 || f.warmPoolInterpreter > 100 {
		return fmt.Errorf("serve: --warm-pool-interpreter %d must be 0..100", f.warmPoolInterpreter)
	}
	if f.volumeSizeMB < volume.MinSizeMB || f.volumeSizeMB > 65536 {
		return fmt.Errorf("serve: --volume-size-mb %d must be %d..65536", f.volumeSizeMB, volume.MinSizeMB)
	}
	if f.warmPool < 0 || f.warmPool > 100 {
		return fmt.Errorf("serve: --warm-pool %d must be 0..100", f.warmPool)
	}
	rc, err := parseRuntimeClasses(*classes)
	if err != nil {
		return fmt.Errorf("serve: --runtime-classes: %w", err)
	}
	f.runtimeClasses = rc
	if q := f.teamQuotas; q.MaxSandboxes < 0 || q.MaxVCPU < 0 || q.MaxMemoryMB < 0 || q.MaxBuilds < 0 {
		return errors.New("serve: --team-max-* must not be negative (0 means unlimited)")
	}
	if f.pausedRetention < 0 {
		return errors.New("serve: --paused-retention must not be negative (0 keeps paused sandboxes)")
	}
	if err := checkBuiltinNames(f.builtinNames); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve: unexpected argument %q", fs.Arg(0))
	}
	if (f.agentListen == "") != (f.agentTLSDir == "") {
		return errors.New("serve: --agent-listen and --agent-tls-dir go together: the agent is never served over TCP without mutual TLS")
	}
	if (f.clusterListen == "") != (f.clusterTLSDir == "") {
		return errors.New("serve: --cluster-listen and --cluster-tls-dir go together: nodes are never taken without mutual TLS")
	}
	if f.noNode && f.clusterListen == "" {
		return errors.New("serve: --no-node needs --cluster-listen: sandboxes must run on nodes that report")
	}
	if f.noNode && f.agentListen != "" {
		return errors.New("serve: --agent-listen serves this server's node, and --no-node runs none")
	}
	if f.baseRootfs == "" {
		return errors.New("serve: --base-rootfs is required (make run passes it)")
	}
	if fi, err := os.Stat(filepath.Join(f.baseRootfs, "bin")); err != nil || !fi.IsDir() {
		return fmt.Errorf("serve: --base-rootfs %s is not a root filesystem", f.baseRootfs)
	}
	if err := f.absolute(); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	return runServer(ctx, f, logger)
}

// absolute resolves every path flag against the working directory once, at
// start: runsc needs absolute bundle and root paths, and nothing later may
// depend on where the server was started.
func (f *serveFlags) absolute() error {
	d, err := dataDir(f.dataDir)
	if err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	f.dataDir = d
	if f.store, err = storeLocation(f.store, d); err != nil {
		return err
	}
	for _, p := range []struct {
		flag string
		v    *string
	}{{"--base-rootfs", &f.baseRootfs}, {"--runsc", &f.runsc}, {"--envd", &f.envd}, {"--client-modules", &f.clientModules}, {"--interpreter", &f.interpreter}, {"--cache-dir", &f.cacheDir}, {"--images-dir", &f.imagesDir}, {"--cluster-tls-dir", &f.clusterTLSDir}} {
		if *p.v == "" {
			continue
		}
		abs, err := filepath.Abs(*p.v)
		if err != nil {
			return fmt.Errorf("%s %q: %w", p.flag, *p.v, err)
		}
		*p.v = abs
	}
	return nil
}

// listenTCP opens a TCP listener on addr, with SO_REUSEPORT when
// --reuse-port is set.
func (f *serveFlags) listenTCP(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	if f.reusePort {
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			}); err != nil {
				return err
			}
			return serr
		}
	}
	return lc.Listen(ctx, "tcp", addr)
}

// reportedDomain is the sandbox domain the API hands to clients. Without
// --domain it is localhost with the sandbox proxy's port: curl and browsers on
// this machine resolve every *.localhost name to loopback, so a port's host
// from the clients' getHost, <port>-<id>.localhost:<proxy port>, opens with
// plain http:// and no wildcard DNS; the clients' own daemon traffic goes to
// E2B_SANDBOX_URL.
func reportedDomain(f serveFlags) string {
	if f.domain != "" {
		return f.domain
	}
	_, port, err := net.SplitHostPort(f.sandboxListen)
	if err != nil || port == "" || port == "0" {
		return ""
	}
	return "localhost:" + port
}

func defaultRunsc() string { return filepath.Join(defaultCacheDir(), "bin", "runsc") }

// defaultCacheDir is $LELANTOS_CACHE_DIR, else /var/cache/lelantos: the
// scripts' rule (scripts/lib.sh).
func defaultCacheDir() string {
	if dir := os.Getenv("LELANTOS_CACHE_DIR"); dir != "" {
		return dir
	}
	return "/var/cache/lelantos"
}

// defaultEnvd is the envd built next to this binary.
func defaultEnvd() string {
	exe, err := os.Executable()
	if err != nil {
		return "envd"
	}
	return filepath.Join(filepath.Dir(exe), "envd")
}

func runServer(ctx context.Context, f serveFlags, log *slog.Logger) error {
	if err := os.MkdirAll(f.dataDir, 0o700); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	clientEnv := filepath.Join(f.dataDir, "client.env")
	_ = os.Remove(clientEnv)
	defer os.Remove(clientEnv)

	loc, err := storeLocation(f.store, f.dataDir)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	// A database started beside the server (a Kubernetes StatefulSet, a
	// service manager) may answer a little after it: wait for it.
	db, err := store.Open(ctx, loc, store.WithWait(storeWait, func(err error) {
		log.Warn("waiting for the database", "err", err)
	}))
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer db.Close()
	log.Info("store open", "database", db.Dialect(), "at", db.Path())
	key, err := adminKey(ctx, db, f.dataDir, f.adminKeyFile)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if err := registerBase(ctx, db, f.baseRootfs); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	f.interpreter = interpreterOrNone(f.interpreter, log)
	tel, err := startTelemetry(ctx, f.telemetry, log)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer tel.close()
	cpObs, err := tel.controlPlaneObservers(db)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	vols := openVolumes(f.dataDir, log)
	defer vols.close(log) // after the node stops
	var px *proxy.Proxy
	remote, err := newRemoteNodes(f, log, func() { px.CloseIdleConnections() }, func(id string) { px.DropSandbox(id) })
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	cfg := controlplane.Config{Domain: reportedDomain(f), Logger: log,
		DefaultCPU: baseCPU, DefaultMemoryMB: baseMemoryMB, DefaultDiskSizeMB: baseDiskMB,
		RuntimeClasses: f.runtimeClasses, TeamQuotas: f.teamQuotas, PausedRetention: pausedRetention(f.pausedRetention),
		Volumes: vols.backend(), VolumeSizeMB: f.volumeSizeMB, Observer: cpObs.ops, TracerProvider: tel.tracerProvider(),
		Remote: remote.nodes(), Artifacts: remote.artifacts(), Images: remote.images()}
	var (
		node    *localNode
		ownNode controlplane.Node
	)
	if !f.noNode {
		node, err = startNode(ctx, nodeConfig{Images: remote.localImages(), Volumes: vols.engine(), Limits: f.limits, WarmPool: f.warmPool, DataDir: f.dataDir, Runsc: f.runsc, Envd: f.envd, Interpreter: f.interpreter, Subnet: f.subnet,
			NetPrefix: f.netPrefix, Logger: log, Store: db, BaseRootfs: f.baseRootfs, RuntimeClasses: f.runtimeClasses, DNSUpstreams: f.dnsUpstreams,
			BuildCacheMB: f.buildCacheMB, PrivateRegistries: f.privateRegistries, Metrics: tel.node, Tracing: tel.tracing,
			AgentListen: f.agentListen, AgentTLSDir: f.agentTLSDir})
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		defer node.Close(context.Background())
		cfg.Templates, cfg.Builder = node.templates, node.templates
		ownNode = proxyAwareNode{AgentServiceClient: node.client, dropIdle: func() { px.CloseIdleConnections() },
			dropSandbox: func(id string) { px.DropSandbox(id) }}
	}
	svc, err := controlplane.New(cfg, db, ownNode)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if err := tel.controlPlane.Register(controlplane.NewNodeCollector(svc)); err != nil {
		return fmt.Errorf("serve: control plane metrics: %w", err)
	}
	px, err = proxy.New(proxy.Config{Domain: f.domain, TLSDir: filepath.Join(f.dataDir, "tls"), Logger: log, SignedFiles: svc, Resumer: svc,
		Observer: cpObs.proxy}, svc)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if err := svc.ReconcileVolumes(ctx); err != nil {
		log.Error("reconcile volumes with their content", "err", err)
	}
	if err := svc.Reconcile(ctx); err != nil {
		log.Error("reconcile sandboxes with the node", "err", err)
	}
	apiLn, err := f.listenTCP(ctx, f.listen)
	if err != nil {
		return fmt.Errorf("serve: --listen: %w", err)
	}
	sbLn, err := f.listenTCP(ctx, f.sandboxListen)
	if err != nil {
		return fmt.Errorf("serve: --sandbox-listen: %w", err)
	}
	var tlsLn net.Listener
	if f.domain != "" {
		if tlsLn, err = f.listenTCP(ctx, f.tlsListen); err != nil {
			return fmt.Errorf("serve: --tls-listen: %w", err)
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 5)
	go func() { errs <- svc.Run(ctx) }()
	go func() { errs <- tel.serve(ctx) }()
	apiSrv := &http.Server{
		Handler: api.NewHandler(svc, controlplane.NewAuthenticator(db, nil), api.Options{Logger: log, Spec: apispec.Spec(), Templates: svc, Volumes: vols.routes(svc),
			Accounts: controlplane.NewAccounts(db), Observer: cpObs.api, TracerProvider: tel.tracerProvider()}),
		ReadHeaderTimeout: 30 * time.Second,
	}
	go func() { errs <- apiSrv.Serve(apiLn) }()
	go func() { errs <- px.Serve(ctx, sbLn) }()
	if tlsLn != nil {
		go func() { errs <- px.ServeTLS(ctx, tlsLn) }()
	}
	clusterSrv, err := serveCluster(f, svc, remote, log)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if clusterSrv != nil {
		defer clusterSrv.Close()
	}

	env := clientEnvFile(f, apiLn.Addr().String(), sbLn.Addr().String(), key)
	if err := os.WriteFile(clientEnv, []byte(env), 0o600); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	printReady(f, apiLn.Addr().String(), sbLn.Addr().String(), key, clientEnv, px.CAPath())
	if node != nil {
		bt := startBuiltins(ctx, f, db, node, log)
		defer bt.wait()
	}
	select {
	case <-ctx.Done():
	case err := <-errs:
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			cancel()
			return fmt.Errorf("serve: %w", err)
		}
	}
	log.Info("shutting down; sandboxes keep running and are re-adopted at the next start")
	shutdownCtx, done := context.WithTimeout(context.Background(), 10*time.Second)
	defer done()
	_ = apiSrv.Shutdown(shutdownCtx)
	cancel()
	return nil
}

// startBuiltins builds the built-in templates on node in the background.
func startBuiltins(ctx context.Context, f serveFlags, db *store.DB, node *localNode, log *slog.Logger) *builtins {
	defs := defaultBuiltinDefs()
	if f.builtinDefs != nil {
		defs = *f.builtinDefs
	}
	bt := &builtins{builder: node.templates.builder, db: db, dataDir: f.dataDir, envd: f.envd, interpreter: f.interpreter,
		baseRootfs: f.baseRootfs, caDir: localCADir, defs: defs, pools: node.engine, warm: f.warmPoolInterpreter, log: log,
		only: builtinSet(f.builtinNames)}
	if f.cacheDir != "" {
		bt.cache = newBuiltinCache(f.cacheDir)
	}
	bt.start(ctx)
	return bt
}

// storeWait is how long serve waits for a PostgreSQL server that does not
// answer yet.
const storeWait = 2 * time.Minute

// adminKey creates the admin key (of the team "default") at the first start, saves it in DataDir/admin-key
// (0600) and returns it; later starts read it from there. With given, a file holding the operator's key,
// that key is registered instead and returned.
func adminKey(ctx context.Context, db *store.DB, dir, given string) (string, error) {
	if given != "" {
		b, err := os.ReadFile(given)
		if err != nil {
			return "", fmt.Errorf("--admin-key-file: %w", err)
		}
		key := strings.TrimSpace(string(b))
		if err := controlplane.EnsureGivenAdminKey(ctx, db, key); err != nil {
			return "", fmt.Errorf("--admin-key-file %s: %w", given, err)
		}
		return key, nil
	}
	path := filepath.Join(dir, "admin-key")
	plain, created, err := controlplane.EnsureAdminKey(ctx, db)
	if err != nil {
		return "", err
	}
	if created {
		if err := os.WriteFile(path, []byte(plain+"\n"), 0o600); err != nil {
			return "", fmt.Errorf("save admin key: %w", err)
		}
		return plain, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", nil // revoked or removed on purpose: print none
	}
	return strings.TrimSpace(string(b)), nil
}

// The base template's sizes, which are also the server's defaults.
const (
	baseCPU      = 2
	baseMemoryMB = 512
	baseDiskMB   = 2048
)

// registerBase records the base template, pointing at this machine's tree: a
// public template of the default team, which every team may use.
func registerBase(ctx context.Context, db *store.DB, rootfs string) error {
	t, err := db.GetTemplate(ctx, "base")
	if err == nil && t.RootfsPath == rootfs && t.Status == store.TemplateReady && t.Public {
		return nil
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("register base template: %w", err)
	}
	nt := &store.Template{ID: "base", BuildID: filepath.Base(rootfs), RootfsPath: rootfs,
		CPUCount: baseCPU, MemoryMB: baseMemoryMB, DiskSizeMB: baseDiskMB, EnvdVersion: envd.Version, Status: store.TemplateReady, Public: true}
	if err := db.PutTemplate(ctx, nt); err != nil {
		return fmt.Errorf("register base template: %w", err)
	}
	return nil
}

func clientEnvFile(f serveFlags, apiAddr, sbAddr, key string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "E2B_API_URL=http://%s\n", apiAddr)
	fmt.Fprintf(&b, "E2B_SANDBOX_URL=http://%s\n", sbAddr)
	// The clients' Volume class reaches the volume content API, served with the API, here.
	fmt.Fprintf(&b, "E2B_VOLUME_API_URL=http://%s\n", apiAddr)
	fmt.Fprintf(&b, "E2B_API_KEY=%s\n", key)
	if f.domain != "" {
		fmt.Fprintf(&b, "E2B_DOMAIN=%s\n", f.domain)
	}
	if f.clientModules != "" {
		fmt.Fprintf(&b, "NODE_PATH=%s\n", f.clientModules)
	}
	return b.String()
}

func printReady(f serveFlags, apiAddr, sbAddr, key, envPath, caPath string) {
	fmt.Printf("\nLelantos is ready.\n")
	fmt.Printf("  API:          http://%s\n", apiAddr)
	fmt.Printf("  Sandbox URL:  http://%s\n", sbAddr)
	if f.domain != "" {
		fmt.Printf("  Domain:       %s (TLS on %s; CA for NODE_EXTRA_CA_CERTS: %s)\n", f.domain, f.tlsListen, caPath)
	}
	if key != "" {
		fmt.Printf("  API key:      %s\n", key)
	}
	fmt.Printf("\nConfigure the e2b clients with:\n  set -a; . %s; set +a\n\n", envPath)
}

// pausedRetention turns --paused-retention into the control plane's setting,
// where 0 means the default.
func pausedRetention(d time.Duration) time.Duration {
	if d == 0 {
		return controlplane.PausedForever
	}
	return d
}
