package conformance

import (
	"context"
	"testing"

	"lelantos.dev/lelantos/internal/runtime"
)

// testReadopt: a new Runtime over the same state lists, freezes, thaws and kills a
// sandbox the old one started, and starts new ones.
func testReadopt(t *testing.T, h *Harness, rt runtime.Runtime, opts Options) {
	ctx := context.Background()
	sb := h.start(t, rt, newID(t, ""))
	again := opts.Reopen(t)
	infos, err := again.List(ctx)
	if err != nil {
		t.Fatalf("list after restart: %v", err)
	}
	found := false
	for _, i := range infos {
		found = found || (i.ID == sb.id && i.Status == runtime.StatusRunning)
	}
	if !found {
		t.Fatalf("after restart, list %+v lacks running %s", infos, sb.id)
	}
	if err := again.Freeze(ctx, sb.id); err != nil {
		t.Fatalf("freeze after restart: %v", err)
	}
	if err := again.Thaw(ctx, sb.id); err != nil {
		t.Fatalf("thaw after restart: %v", err)
	}
	sb.waitReady(t)
	next := h.start(t, again, newID(t, "n"))
	if err := again.Kill(ctx, sb.id); err != nil {
		t.Fatalf("kill after restart: %v", err)
	}
	if sb.answers() {
		t.Fatal("a sandbox killed after a restart still answers")
	}
	next.must(t, "GET", "/count")
}
