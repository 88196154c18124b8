package engine_test

import (
	"strings"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/engine"
	"lelantos.dev/lelantos/internal/engine/enginetest"
)

// TestStartCommandOutlivesReadyTimeout: the template's start command (a server,
// say) runs for the sandbox's whole life, not only while the engine waits for
// the sandbox to be ready; a fresh boot after a pause without memory starts it
// again, just as long-lived.
func TestStartCommandOutlivesReadyTimeout(t *testing.T) {
	const ready = 3 * time.Second
	node := enginetest.NewNode(t, "10.232.80.0/24")
	e := node.EngineWith(t, func(o *engine.Options) { o.ReadyTimeout = ready })
	spec := newSpec(t, "scready")
	spec.StartCmd = "exec sleep 100000"
	st := create(t, e, spec)
	alive := func(t *testing.T, st engine.Status, what string) {
		t.Helper()
		time.Sleep(ready + 2*time.Second)
		if got := must(t, st, "pgrep -x sleep || echo none"); strings.TrimSpace(got) == "none" {
			t.Errorf("%s: the start command was gone %s after it started", what, ready+2*time.Second)
		}
	}
	alive(t, st, "after the create")

	if _, err := e.PauseFiles(t.Context(), spec.ID); err != nil {
		t.Fatalf("pause without memory: %v", err)
	}
	st, err := e.Resume(t.Context(), spec.ID)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	alive(t, st, "after a fresh boot")
}
