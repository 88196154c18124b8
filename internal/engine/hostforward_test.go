package engine_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"lelantos.dev/lelantos/internal/engine/enginetest"
)

// TestHostForwardingLeftAsFound: a node turns ip_forward on for its sandboxes with
// a guard in FORWARD in front of everything else, and leaves both as it found
// them when it goes.
func TestHostForwardingLeftAsFound(t *testing.T) {
	before := enginetest.HostForwarding(t)
	t.Logf("before the node: ip_forward %s, FORWARD %q", before.IPForward, before.Chain)
	node := enginetest.NewNode(t, "10.232.26.0/24")
	e := node.Engine(t)
	st := create(t, e, newSpec(t, "fwdhost"))
	must(t, st, "true")
	during := enginetest.HostForwarding(t)
	if during.IPForward != "1" {
		t.Errorf("ip_forward is %s while the node runs, want 1", during.IPForward)
	}
	if !slices.Contains(during.Chain, "-A FORWARD -j LELANTOS-FORWARDING") {
		t.Errorf("FORWARD has no guard while the node runs: %q", during.Chain)
	}
	if !slices.ContainsFunc(during.Chain, func(r string) bool { return strings.HasSuffix(r, "-FWD") }) {
		t.Errorf("FORWARD has no jump into the node's chain: %q", during.Chain)
	}
	if err := e.Kill(context.Background(), "fwdhost"); err != nil {
		t.Fatal(err)
	}
	e.Close()
	node.Close()
	if d := enginetest.HostForwarding(t).Diff(before); d != "" {
		t.Errorf("the node left the host's forwarding changed:\n%s", d)
	}
}
