// Command lelantos is Lelantos' server, node agent and command-line client.
//
//	lelantos serve            run the control plane, the proxy and the local node
//	lelantos keys ...         create, list and revoke API keys
//	lelantos teams ...        list and create teams, set their quotas
//	lelantos template ...     build, list and delete templates through the API
//	lelantos sandbox ...      create, list, exec in, copy to and from, and kill sandboxes
//	lelantos nodes ...        list the nodes through the API, drain one or make it ready
//	lelantos certs ...        make the cluster CA and certificates for the agent's mutual TLS
//	lelantos version          print the version
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"

	"lelantos.dev/lelantos/internal/agent"
)

// version and commit are set at build time with -ldflags "-X
// main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = ""
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		os.Exit(exitStatus(err))
	}
}

const usage = `usage: lelantos <command> [flags]

commands:
  serve     run the API, the sandbox proxy and this machine's node
  keys      manage API keys: keys create NAME [--team TEAM] | keys list | keys revoke ID
  teams     manage teams and their quotas: teams list | teams create TEAM | teams set TEAM --max-sandboxes N ...
  template  build, list and delete templates through the API:
            template build -n NAME [-f Dockerfile] [flags] CONTEXT | template ls | template rm NAME
  sandbox   (alias sb) work with sandboxes through the API: sandbox create | ls | info ID |
            exec ID -- CMD | shell ID | cp SRC DST | logs ID | metrics ID | pause ID | resume ID | kill ID
  node      run this machine's sandboxes for a control plane elsewhere (serve --cluster-listen):
            node --join https://HOST:PORT --tls-dir DIR --listen ADDR --base-rootfs DIR
  nodes     list the nodes, drain one, make it ready: nodes [ls] | nodes drain ID | nodes ready ID
  certs     the cluster CA and node and control-plane certificates for the agent's
            mutual TLS: certs init DIR --hosts H,... | certs node DIR NAME --hosts H,... |
            certs control-plane DIR NAME [--hosts H,...]
  version   print the version

Run "lelantos <command> -h" for a command's flags.`

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("no command given\n%s", usage)
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:])
	case "keys":
		return keys(ctx, args[1:])
	case "certs":
		return certs(args[1:])
	case "nodes":
		return nodesCmd(ctx, args[1:])
	case "node":
		return nodeCmd(ctx, args[1:])
	case "teams", "team":
		return teamsCmd(ctx, args[1:])
	case "template", "templates":
		return templateCmd(ctx, args[1:])
	case "sandbox", "sandboxes", "sb":
		return sandboxCmd(ctx, args[1:])
	case "version", "--version", "-version":
		fmt.Println("lelantos", version)
		return nil
	case "help", "-h", "--help":
		fmt.Println(usage)
		return nil
	}
	return fmt.Errorf("unknown command %q\n%s", args[0], usage)
}

// dataDir is the flag's value, else LELANTOS_DATA_DIR, else ./.lelantos, made
// absolute: runsc and the template builder refuse relative paths, and the server
// must not depend on its working directory after it starts.
func dataDir(flagValue string) (string, error) {
	d := flagValue
	if d == "" {
		d = os.Getenv("LELANTOS_DATA_DIR")
	}
	if d == "" {
		d = ".lelantos"
	}
	abs, err := filepath.Abs(d)
	if err != nil {
		return "", fmt.Errorf("data directory %q: %w", d, err)
	}
	return abs, nil
}

// build names this binary's build for the node's agent: the version and
// commit set at build time, else the revision the Go toolchain stamped.
func build() agent.Build {
	b := agent.Build{Version: version, Commit: commit}
	if info, ok := debug.ReadBuildInfo(); ok && b.Commit == "" {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				b.Commit = s.Value
			}
		}
	}
	return b
}
