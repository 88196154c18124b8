package main

import (
	"flag"
	"fmt"
	"strings"

	"lelantos.dev/lelantos/internal/clustertls"
)

const certsUsage = `usage: lelantos certs init DIR --hosts HOST[,HOST...]
       lelantos certs node DIR NAME --hosts HOST[,HOST...]
       lelantos certs control-plane DIR NAME [--hosts HOST[,HOST...]]
       lelantos certs node-issuer DIR

init makes a cluster CA in DIR with a node certificate (node.pem) and a
control-plane certificate (control-plane.pem), both for the hosts they are
reached at; node and control-plane issue more from DIR's CA. A node's agent
serves with its certificate and reports to the control plane with it; a
control plane calls nodes with its own and, given hosts, serves the cluster
endpoint nodes report to. node-issuer adds to DIR a node issuer
(node-issuer.pem and its key, its certificate appended to ca.pem) for nodes
that issue their own certificates (lelantos node --tls-issuer): those are
trusted only as nodes'. Keys are written 0600; nothing existing is replaced.`

// certs runs `lelantos certs`: the cluster CA and the certificates of nodes
// and control planes (internal/clustertls).
func certs(args []string) error {
	fs := flag.NewFlagSet("certs", flag.ContinueOnError)
	hosts := fs.String("hosts", "", "comma-separated DNS names and IP addresses the certificate's holder is reached at")
	fs.Usage = func() { fmt.Fprintln(fs.Output(), certsUsage); fs.PrintDefaults() }
	rest, err := parseAdminArgs(fs, args)
	if err != nil {
		return usagef("certs: %v", err)
	}
	var hostList []string
	for _, h := range strings.Split(*hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hostList = append(hostList, h)
		}
	}
	if len(rest) == 0 {
		return usagef("certs: a subcommand is required: init, node, control-plane or node-issuer\n%s", certsUsage)
	}
	switch cmd := rest[0]; {
	case cmd == "init" && len(rest) == 2:
		if len(hostList) == 0 {
			return usagef("certs init: --hosts is required: the names or addresses the node's agent is reached at")
		}
		if err := clustertls.InitDir(rest[1], hostList); err != nil {
			return fmt.Errorf("certs init: %w", err)
		}
		fmt.Printf("made a cluster CA in %s, with %s.pem for %s and %s.pem\n", rest[1], clustertls.NodeName,
			strings.Join(hostList, ", "), clustertls.ControlPlaneName)
	case cmd == "node" && len(rest) == 3:
		if len(hostList) == 0 {
			return usagef("certs node: --hosts is required: the names or addresses node %s is reached at", rest[2])
		}
		if err := clustertls.IssueInto(rest[1], rest[2], clustertls.RoleNode, hostList); err != nil {
			return fmt.Errorf("certs node: %w", err)
		}
		fmt.Printf("issued node certificate %s for %s\n", clustertls.CertFile(rest[1], rest[2]), strings.Join(hostList, ", "))
	case cmd == "control-plane" && len(rest) == 3:
		if err := clustertls.IssueInto(rest[1], rest[2], clustertls.RoleControlPlane, hostList); err != nil {
			return fmt.Errorf("certs control-plane: %w", err)
		}
		fmt.Printf("issued control-plane certificate %s\n", clustertls.CertFile(rest[1], rest[2]))
	case cmd == "node-issuer" && len(rest) == 2:
		if err := clustertls.AddNodeIssuer(rest[1]); err != nil {
			return fmt.Errorf("certs node-issuer: %w", err)
		}
		fmt.Printf("made a node issuer in %s (%s, %s) and added it to %s\n", rest[1], clustertls.NodeIssuerFile,
			clustertls.NodeIssuerKeyFile, clustertls.CAFile)
	default:
		return usagef("certs: unexpected arguments %q\n%s", strings.Join(rest, " "), certsUsage)
	}
	return nil
}
