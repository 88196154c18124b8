package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCertsCommand: certs init, node, control-plane and node-issuer write what they say,
// and bad command lines are usage errors naming what is missing.
func TestCertsCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	var u *usageError
	for _, tt := range []struct {
		args  []string
		usage string // "" for success
	}{
		{[]string{"init", dir}, "--hosts is required"},
		{[]string{"init", dir, "--hosts", "127.0.0.1,node-a"}, ""},
		{[]string{"node", dir, "node-b"}, "--hosts is required"},
		{[]string{"node", dir, "node-b", "--hosts", "10.0.0.2"}, ""},
		{[]string{"control-plane", dir, "replica-2"}, ""},
		{[]string{"control-plane", dir, "replica-3", "--hosts", "cp.cluster.test"}, ""},
		{[]string{"node-issuer", dir}, ""},
		{[]string{}, "a subcommand is required"},
		{[]string{"bogus", dir}, "unexpected arguments"},
	} {
		err := certs(tt.args)
		switch {
		case tt.usage == "" && err != nil:
			t.Errorf("certs %v: %v", tt.args, err)
		case tt.usage != "" && (!errors.As(err, &u) || !strings.Contains(err.Error(), tt.usage)):
			t.Errorf("certs %v = %v, want a usage error saying %q", tt.args, err, tt.usage)
		}
	}
	for _, f := range []string{"ca.pem", "ca-key.pem", "node.pem", "node-key.pem", "control-plane.pem", "node-b.pem", "replica-2-key.pem", "replica-3.pem", "node-issuer.pem", "node-issuer-key.pem"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if err := certs([]string{"init", dir, "--hosts", "x"}); err == nil || !strings.Contains(err.Error(), "already holds a CA") {
		t.Errorf("a second init = %v, want it refused", err)
	}
}

// TestServeAgentListenNeedsTLS: the agent is never served over TCP without
// mutual TLS, and the flags say so.
func TestServeAgentListenNeedsTLS(t *testing.T) {
	for _, args := range [][]string{
		{"--agent-listen", "127.0.0.1:0"},
		{"--agent-tls-dir", t.TempDir()},
	} {
		err := serve(context.Background(), args)
		if err == nil || !strings.Contains(err.Error(), "--agent-listen and --agent-tls-dir go together") {
			t.Errorf("serve %v = %v, want the flags refused", args, err)
		}
	}
}
