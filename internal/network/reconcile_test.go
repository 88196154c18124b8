package network

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

func TestReconcileRemovesOrphans(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	cfg := testConfig(t)
	m1 := newTestManager(t, cfg)
	keep, err := m1.Setup(ctx, "keep", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m1.Setup(ctx, "drop", Options{}); err != nil {
		t.Fatal(err)
	}
	// A half-built sandbox from a crash: record written, namespace made, no veth.
	half := linkName(cfg.NamePrefix, "half", 0)
	gw, addr := newPool(DefaultSubnet).addrs(500)
	rec := &record{Version: recordVersion, SandboxID: "half", Address: addr, Gateway: gw,
		PrefixLen: 30, HostVeth: half, NetNS: half}
	if err := writeRecord(cfg.StateDir, rec); err != nil {
		t.Fatal(err)
	}
	// Strays with no record at all: a namespace and a veth.
	strayNS, strayLink := linkName(cfg.NamePrefix, "stray-ns", 0), linkName(cfg.NamePrefix, "stray-link", 0)
	for _, args := range [][]string{
		{"netns", "add", half},
		{"netns", "add", strayNS},
		{"link", "add", strayLink, "type", "veth", "peer", "name", "x" + strayLink[1:]},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	// Not ours though prefix-named: must survive.
	foreign := filepath.Join(DefaultNetNSDir, cfg.NamePrefix+"-foreign")
	if out, err := exec.Command("ip", "netns", "add", filepath.Base(foreign)).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	defer removeNetNS(foreign)

	m2 := newTestManager(t, cfg) // restarted: loads keep, drop and half
	if n := len(m2.List()); n != 3 {
		t.Fatalf("List after restart has %d allocations, want 3", n)
	}
	if err := m2.Reconcile(ctx, func(id string) bool { return id == "keep" }); err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	s := snapshot(t, cfg)
	want := hostState{netns: sorted([]string{keep.HostVeth, filepath.Base(foreign)}), links: []string{keep.HostVeth},
		records: []string{"keep.json"}, rules: s.rules}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("after Reconcile: %v, want %v", s, want)
	}
	if got := m2.List(); len(got) != 1 || !reflect.DeepEqual(got[0], keep) {
		t.Errorf("List after Reconcile = %+v, want only %+v", got, keep)
	}
}

func TestNewManagerRejectsBadRecords(t *testing.T) {
	requireRoot(t)
	gw, addr := newPool(DefaultSubnet).addrs(7)
	tests := []struct {
		name string
		recs []record
		want string
	}{
		{"address outside subnet", []record{{SandboxID: "x", Address: netip.MustParseAddr("192.0.2.2"), Gateway: gw}}, "not a sandbox address"},
		{"gateway mismatch", []record{{SandboxID: "x", Address: addr, Gateway: addr}}, "does not match"},
		{"same address twice", []record{{SandboxID: "x", Address: addr, Gateway: gw}, {SandboxID: "y", Address: addr, Gateway: gw}}, "allocated twice"},
		{"foreign name", []record{{SandboxID: "x", Address: addr, Gateway: gw, HostVeth: "eth0", NetNS: "eth0"}}, "do not fit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
				t.Fatal(err)
			}
			for i, r := range tt.recs {
				r.Version, r.PrefixLen = recordVersion, 30
				if r.HostVeth == "" {
					r.HostVeth = linkName(cfg.NamePrefix, r.SandboxID, i)
					r.NetNS = r.HostVeth
				}
				if err := writeRecord(cfg.StateDir, &r); err != nil {
					t.Fatal(err)
				}
			}
			m, err := NewManager(context.Background(), cfg)
			if err == nil {
				m.Uninstall(context.Background())
				t.Fatal("NewManager accepted bad records")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want it to mention %q", err, tt.want)
			}
			fw := newFirewall(mustDefaults(t, cfg))
			if err := fw.uninstall(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
}

func mustDefaults(t *testing.T, cfg Config) Config {
	t.Helper()
	c, err := cfg.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestReconcileDuringConcurrentSetup(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	cfg := testConfig(t)
	m := newTestManager(t, cfg)
	const n = 12
	errs := make([]error, n)
	var setups, reconciler sync.WaitGroup
	for i := range n {
		setups.Go(func() { _, errs[i] = m.Setup(ctx, fmt.Sprintf("race%d", i), Options{}) })
	}
	stop := make(chan struct{})
	var rounds int
	var recErr error
	reconciler.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			rounds++
			if err := m.Reconcile(ctx, func(string) bool { return true }); err != nil {
				recErr = err
				return
			}
		}
	})
	setups.Wait()
	close(stop)
	reconciler.Wait()
	if err := errors.Join(append(errs, recErr)...); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d Reconcile rounds ran during the Setups", rounds)
	if s := snapshot(t, cfg); len(s.netns) != n || len(s.links) != n || len(s.records) != n {
		t.Fatalf("after racing Setup and Reconcile: %v", s)
	}
	for _, ep := range m.List() {
		if !m.intact(&record{HostVeth: ep.HostVeth, NetNS: ep.HostVeth}) {
			t.Errorf("Reconcile removed %s's network while it was being set up", ep.SandboxID)
		}
	}
}
