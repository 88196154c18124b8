package engine_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/engine"
	"lelantos.dev/lelantos/internal/engine/enginetest"
	"lelantos.dev/lelantos/internal/network"
)

// outsideNet makes a namespace joined to the test's host namespace that plays
// the internet: addrs on its loopback, routed to it, each with a listener on
// port 8080. It is removed when the test ends.
func outsideNet(t *testing.T, name string, addrs ...string) {
	t.Helper()
	outsideNetAt(t, name, "198.18.70", addrs...)
}

// outsideNetAt is outsideNet on the /24 net (three octets), whose lower /25 is
// the link.
func outsideNetAt(t *testing.T, name, net24 string, addrs ...string) {
	t.Helper()
	hostEnd, outEnd := net24+".126", net24+".1"
	cmds := [][]string{
		{"netns", "add", name},
		{"link", "add", name, "type", "veth", "peer", "name", "eth0", "netns", name},
		{"addr", "add", hostEnd + "/25", "dev", name},
		{"link", "set", name, "up"},
		{"-n", name, "addr", "add", outEnd + "/25", "dev", "eth0"},
		{"-n", name, "link", "set", "eth0", "up"},
		{"-n", name, "link", "set", "lo", "up"},
	}
	for _, a := range addrs {
		cmds = append(cmds, []string{"-n", name, "addr", "add", a + "/32", "dev", "lo"}, []string{"route", "add", a + "/32", "via", outEnd})
	}
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", name).Run()
		exec.Command("ip", "netns", "del", name).Run()
	})
	for _, c := range cmds {
		if out, err := exec.Command("ip", c...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", c, err, out)
		}
	}
	for _, a := range addrs {
		cmd := exec.Command("ip", "netns", "exec", name, "python3", "-c",
			fmt.Sprintf("import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('%s',8080))\ns.listen(64)\nwhile True: s.accept()[0].close()", a))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	}
	for _, a := range addrs { // wait until they listen
		for i := 0; ; i++ {
			c, err := net.Dial("tcp4", net.JoinHostPort(a, "8080"))
			if err == nil {
				c.Close()
				break
			}
			if i > 100 {
				t.Fatalf("listener on %s: %v", a, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// TestEgressRulesInSandbox: a gVisor sandbox's egress rules hold from its
// first process on, UpdateNetwork replaces them at once, only while it runs,
// and they are recorded for a restarted engine.
func TestEgressRulesInSandbox(t *testing.T) {
	node := enginetest.NewNode(t, "10.232.70.0/24")
	e := node.Engine(t)
	const allowed, denied = "198.18.70.129", "198.18.70.130"
	outsideNet(t, "xeg"+node.NamePrefix[1:], allowed, denied)
	ctx := context.Background()
	open := func(st engine.Status) map[string]bool {
		t.Helper()
		return reachable(t, must(t, st, probeTCP(allowed+":8080", denied+":8080")))
	}

	s := newSpec(t, "egress")
	s.AllowInternet = true
	var err error
	if s.Egress, err = network.ParseEgress(nil, []string{denied}); err != nil {
		t.Fatal(err)
	}
	st := create(t, e, s)
	if got := open(st); !got[allowed+":8080"] || got[denied+":8080"] {
		t.Fatalf("with %s denied: %v", denied, got)
	}
	only, _ := network.ParseEgress([]string{denied}, []string{"0.0.0.0/0"})
	if _, err := e.UpdateNetwork(ctx, s.ID, true, only); err != nil {
		t.Fatal(err)
	}
	if got := open(st); got[allowed+":8080"] || !got[denied+":8080"] {
		t.Fatalf("with only %s allowed: %v", denied, got)
	}
	if ep, _ := node.Network.Get(s.ID); ep == nil || ep.Egress == nil || len(ep.Egress.AllowCIDRs) != 1 {
		t.Fatalf("network endpoint %+v, want the new rules", ep)
	}

	if _, err := e.Pause(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.UpdateNetwork(ctx, s.ID, true, nil); !errors.Is(err, engine.ErrState) {
		t.Fatalf("UpdateNetwork of a paused sandbox = %v, want ErrState", err)
	}
	if _, err := e.Resume(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if got := open(st); got[allowed+":8080"] || !got[denied+":8080"] {
		t.Fatalf("after a resume: %v", got)
	}
	e.Close()
	e2 := node.Engine(t)
	got, err := e2.Get(s.ID)
	if err != nil || got.Spec.Egress == nil || got.Spec.Egress.AllowCIDRs[0].String() != denied+"/32" {
		t.Fatalf("after a restart the spec is %+v (%v), want the rules", got.Spec, err)
	}
	if _, err := e2.UpdateNetwork(ctx, s.ID, true, nil); err != nil {
		t.Fatal(err)
	}
	if got := open(st); !got[allowed+":8080"] || !got[denied+":8080"] {
		t.Fatalf("without rules: %v", got)
	}
}

// TestEgressRulesFromWarmPool: a sandbox taken from the warm pool (booted
// before anyone asked for rules) has its create's rules before it runs
// anything of its own.
func TestEgressRulesFromWarmPool(t *testing.T) {
	node := enginetest.NewNode(t, "10.232.71.0/24")
	pooled := newSpec(t, "")
	pooled.AllowInternet = true
	e := node.EngineWith(t, func(o *engine.Options) { o.Warm = []engine.WarmPool{{Spec: pooled, Size: 1}} })
	waitWarm(t, e, 1)
	const allowed, denied = "198.18.71.129", "198.18.71.130"
	outsideNetAt(t, "xew"+node.NamePrefix[1:], "198.18.71", allowed, denied)

	s := newSpec(t, "egresswarm")
	s.AllowInternet = true
	s.Egress, _ = network.ParseEgress(nil, []string{denied})
	st := create(t, e, s)
	if e.Warm() != 0 {
		t.Fatal("the create did not take the pooled sandbox")
	}
	got := reachable(t, must(t, st, probeTCP(allowed+":8080", denied+":8080")))
	if !got[allowed+":8080"] || got[denied+":8080"] {
		t.Fatalf("pooled sandbox with %s denied: %v", denied, got)
	}
}
