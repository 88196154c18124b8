package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"lelantos.dev/lelantos/internal/artifact"
	"lelantos.dev/lelantos/internal/cluster"
	"lelantos.dev/lelantos/internal/clustertls"
	"lelantos.dev/lelantos/internal/engine"
)

// nodeFlags are `lelantos node`'s options.
type nodeFlags struct {
	join, tlsDir, name, listen, advertise string
	// tlsIssuer, when set, is a node issuer's directory: the node issues
	// its own certificate into tlsDir at each start.
	tlsIssuer string
	// controlPlaneName is the name the control plane's certificate must
	// hold when it is not --join's host.
	controlPlaneName                 string
	dataDir, baseRootfs, runsc, envd string
	subnet, netPrefix                string
	warmPool                         int
	limits                           nodeLimits
	// telemetry is where the node's metrics and traces go.
	telemetry telemetryFlags
}

const nodeUsage = `usage: lelantos node --join URL --tls-dir DIR --listen ADDR --base-rootfs DIR [flags]

node runs this machine's sandboxes for a control plane elsewhere: it serves the
agent RPC and the sandbox tunnel on --listen with mutual TLS only, and reports
itself to the control plane's cluster endpoint (lelantos serve --cluster-listen)
every few seconds. Its name is the one its certificate (--name in --tls-dir,
from lelantos certs node) was issued to. With --tls-issuer (nodes a scheduler
starts, such as a Kubernetes DaemonSet) it issues that certificate itself at
each start, for --name and --advertise's host, from a node issuer
(lelantos certs node-issuer), whose certificates are trusted only as nodes'.`

// nodeCmd runs `lelantos node` until ctx ends.
func nodeCmd(ctx context.Context, args []string) error {
	var f nodeFlags
	fs := flag.NewFlagSet("node", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprintln(fs.Output(), nodeUsage); fs.PrintDefaults() }
	fs.StringVar(&f.join, "join", "", "https://HOST:PORT of the control plane's cluster endpoint (its --cluster-listen)")
	fs.StringVar(&f.tlsDir, "tls-dir", "", "directory of the cluster CA and this node's certificate (lelantos certs)")
	fs.StringVar(&f.name, "name", clustertls.NodeName, "this node's certificate in --tls-dir (NAME.pem): its name is the node's")
	fs.StringVar(&f.tlsIssuer, "tls-issuer", "", "directory of a node issuer (ca.pem, node-issuer.pem, node-issuer-key.pem): issue this node's certificate into --tls-dir at start")
	fs.StringVar(&f.controlPlaneName, "control-plane-name", "", "DNS name the control plane's certificate must hold (default: --join's host)")
	fs.StringVar(&f.listen, "listen", "", "address of the agent RPC and the sandbox tunnel (mutual TLS)")
	fs.StringVar(&f.advertise, "advertise", "", "host:port the control plane dials for --listen (default: --listen); the certificate must hold the host")
	fs.StringVar(&f.dataDir, "data-dir", "", "data directory (default $LELANTOS_DATA_DIR or ./.lelantos)")
	fs.StringVar(&f.baseRootfs, "base-rootfs", "", "root filesystem of the base template (scripts/build-base.sh prints it)")
	fs.StringVar(&f.runsc, "runsc", defaultRunsc(), "path of the runsc binary")
	fs.StringVar(&f.envd, "envd", defaultEnvd(), "path of the envd binary run inside sandboxes")
	fs.StringVar(&f.subnet, "subnet", "10.231.0.0/16", "addresses for sandboxes, a /30 each")
	fs.StringVar(&f.netPrefix, "net-prefix", "lel", "prefix of this node's veth and namespace names (and, upper-cased, its iptables chains)")
	fs.IntVar(&f.warmPool, "warm-pool", 2, "most sandboxes of one template and shape kept booted (0 turns the pools off)")
	f.limits.register(fs)
	f.telemetry.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := f.check(fs); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	return runNode(ctx, f, log)
}

// check validates the flags and makes paths absolute.
func (f *nodeFlags) check(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for _, req := range []struct{ flag, v string }{{"--join", f.join}, {"--tls-dir", f.tlsDir}, {"--listen", f.listen}, {"--base-rootfs", f.baseRootfs}} {
		if req.v == "" {
			return fmt.Errorf("%s is required\n%s", req.flag, nodeUsage)
		}
	}
	if u, err := url.Parse(f.join); err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("--join %q: want https://HOST:PORT", f.join)
	}
	if f.advertise == "" {
		f.advertise = f.listen
	}
	if host, _, err := net.SplitHostPort(f.advertise); err != nil || host == "" || net.ParseIP(host).IsUnspecified() {
		return fmt.Errorf("--advertise %q: want the HOST:PORT the control plane dials (not a wildcard address)", f.advertise)
	}
	if f.tlsIssuer != "" {
		var err error
		if f.tlsIssuer, err = filepath.Abs(f.tlsIssuer); err != nil {
			return fmt.Errorf("--tls-issuer: %w", err)
		}
	}
	if f.warmPool < 0 || f.warmPool > 100 {
		return fmt.Errorf("--warm-pool %d must be 0..100", f.warmPool)
	}
	if err := f.limits.check(); err != nil {
		return err
	}
	d, err := dataDir(f.dataDir)
	if err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	f.dataDir = d
	for _, p := range []*string{&f.baseRootfs, &f.runsc, &f.envd, &f.tlsDir} {
		if *p, err = filepath.Abs(*p); err != nil {
			return err
		}
	}
	if fi, err := os.Stat(filepath.Join(f.baseRootfs, "bin")); err != nil || !fi.IsDir() {
		return fmt.Errorf("--base-rootfs %s is not a root filesystem", f.baseRootfs)
	}
	return nil
}

// runNode starts the node and reports it until ctx ends.
func runNode(ctx context.Context, f nodeFlags, log *slog.Logger) error {
	if err := os.MkdirAll(f.dataDir, 0o700); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	if f.tlsIssuer != "" {
		host, _, _ := net.SplitHostPort(f.advertise)
		if err := clustertls.IssueSelf(f.tlsIssuer, f.tlsDir, f.name, []string{host}); err != nil {
			return fmt.Errorf("node: --tls-issuer: %w", err)
		}
	}
	hc, err := cluster.ControlPlaneClient(f.tlsDir, f.name, f.controlPlaneName)
	if err != nil {
		return fmt.Errorf("node: --tls-dir: %w", err)
	}
	trees, err := artifact.NewCache(filepath.Join(f.dataDir, "node", "artifacts"), f.join, hc, log)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	// Creates from the base template use this node's own tree, where its
	// warm pool expects it, when it is the control plane's.
	start := time.Now()
	name, err := trees.Adopt(ctx, f.baseRootfs)
	if err != nil {
		return fmt.Errorf("node: --base-rootfs: %w", err)
	}
	log.Info("base template named", "name", name, "took", time.Since(start).Round(time.Millisecond))
	tel, err := startTelemetry(ctx, f.telemetry, log)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	defer tel.close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		if err := tel.serve(ctx); err != nil {
			log.Error("metrics listener", "err", err)
		}
	}()
	node, err := startNode(ctx, nodeConfig{Trees: trees, Images: trees, Metrics: tel.node, Tracing: tel.tracing, DataDir: f.dataDir, Runsc: f.runsc, Envd: f.envd, Subnet: f.subnet, NetPrefix: f.netPrefix,
		Logger: log, BaseRootfs: f.baseRootfs, WarmPool: f.warmPool, Limits: f.limits, RuntimeClasses: []string{"gvisor"},
		AgentListen: f.listen, AgentTLSDir: f.tlsDir, AgentCertName: f.name})
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := node.Close(cctx); err != nil {
			log.Warn("stop the node", "err", err)
		}
	}()
	go pruneTrees(ctx, trees, node.engine, log)
	rep := cluster.NewReporter(f.join, hc, f.advertise, node.client, log)
	if _, err := rep.Report(ctx); err != nil {
		log.Warn("first report to the control plane failed; retrying", "join", f.join, "err", err)
	}
	fmt.Printf("lelantos node %s: agent on %s, reporting to %s\n", f.name, f.advertise, f.join)
	rep.Run(ctx)
	log.Info("node stopping; sandboxes keep running and are re-adopted at the next start")
	return nil
}

// Fetched trees nothing on the node uses are removed once they have not been
// asked for in treeIdle; the node looks every treePruneEvery.
const (
	treeIdle       = time.Hour
	treePruneEvery = 10 * time.Minute
)

// pruneTrees removes the fetched trees the engine no longer needs, until ctx
// ends.
func pruneTrees(ctx context.Context, trees *artifact.Cache, eng *engine.Engine, log *slog.Logger) {
	t := time.NewTicker(treePruneEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		inUse, err := eng.TreesInUse()
		if err != nil {
			log.Warn("prune fetched trees", "err", err)
			continue
		}
		removed, err := trees.Prune(ctx, inUse, treeIdle)
		for _, p := range removed {
			log.Info("removed a fetched tree nothing uses", "tree", p)
		}
		if err != nil && ctx.Err() == nil {
			log.Warn("prune fetched trees", "err", err)
		}
	}
}
