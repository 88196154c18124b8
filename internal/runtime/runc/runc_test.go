package runc_test

import (
	"testing"

	"lelantos.dev/lelantos/internal/runtime/conformance"
	"lelantos.dev/lelantos/internal/runtime/runc"
)

func TestConformance(t *testing.T) {
	rt, err := runc.New(runc.Options{StateDir: t.TempDir()})
	if err != nil {
		t.Fatalf("runc runtime (run scripts/install-deps.sh first): %v", err)
	}
	conformance.Run(t, rt, conformance.Options{NetOctet: 251})
}
