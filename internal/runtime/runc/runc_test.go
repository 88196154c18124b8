package runc_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"lelantos.dev/lelantos/internal/runtime"
	"lelantos.dev/lelantos/internal/runtime/conformance"
	"lelantos.dev/lelantos/internal/runtime/runc"
)

func TestConformance(t *testing.T) {
	state := t.TempDir()
	open := func(t *testing.T) runtime.Runtime {
		rt, err := runc.New(runc.Options{StateDir: state})
		if err != nil {
			t.Fatalf("runc runtime (run scripts/install-deps.sh first): %v", err)
		}
		return rt
	}
	conformance.Run(t, open(t), conformance.Options{NetOctet: 251, HostKernel: true, Reopen: open})
	// Every sandbox is gone: so is its id range lease.
	ents, err := os.ReadDir(state)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "idrange-") {
			b, _ := os.ReadFile(filepath.Join(state, e.Name()))
			t.Errorf("lease %s of %q outlived its sandbox", e.Name(), b)
		}
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts runc.Options
		want string
	}{
		{"id ranges past 2^32", runc.Options{IDBase: 4_000_000_000, IDRanges: 10_000}, "do not fit"},
		{"negative id ranges", runc.Options{IDRanges: -1}, "must be positive"},
		{"roots dir under a private directory", runc.Options{RootsDir: filepath.Join(privateDir(t), "roots")}, "cannot be searched"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.StateDir = t.TempDir()
			if _, err := runc.New(tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New(%+v): %v, want an error containing %q", tt.opts, err, tt.want)
			}
		})
	}
}

// privateDir is a directory only its owner may search.
func privateDir(t *testing.T) string {
	d := t.TempDir()
	if err := os.Chmod(d, 0o700); err != nil {
		t.Fatal(err)
	}
	return d
}
