package engine_test

import (
	"context"
	"errors"
	"testing"

	"lelantos.dev/lelantos/internal/engine"
	"lelantos.dev/lelantos/internal/engine/enginetest"
)

func TestSetWarmPool(t *testing.T) {
	node := enginetest.NewNode(t, "10.232.41.0/24")
	e := node.Engine(t)
	ctx := context.Background()
	if e.Warm() != 0 {
		t.Fatalf("a node without pools holds %d", e.Warm())
	}
	first := newSpec(t, "")
	first.TemplateID = "late"
	if err := e.SetWarmPool(ctx, first, 1); err != nil {
		t.Fatal(err)
	}
	waitWarm(t, e, 1)

	// A create of the pool's shape takes the pooled sandbox; the pool refills.
	s := newSpec(t, "warmsetaaaaaaaaaaaa1")
	s.TemplateID = "late"
	st := create(t, e, s)
	must(t, st, "true")
	waitWarm(t, e, 1)

	// The template's new version (here: other memory) replaces the pool and
	// its pooled sandbox.
	second := first
	second.MemoryMB = 384
	if err := e.SetWarmPool(ctx, second, 1); err != nil {
		t.Fatal(err)
	}
	waitWarm(t, e, 1)
	s2 := newSpec(t, "warmsetaaaaaaaaaaaa2")
	s2.TemplateID, s2.MemoryMB = "late", 384
	must(t, create(t, e, s2), "true")
	waitWarm(t, e, 1)

	if err := e.SetWarmPool(ctx, second, 0); err != nil {
		t.Fatal(err)
	}
	waitWarm(t, e, 0)
	bad := first
	bad.RootfsPath = "relative"
	if err := e.SetWarmPool(ctx, bad, 1); !errors.Is(err, engine.ErrInvalid) {
		t.Fatalf("a bad spec: %v, want ErrInvalid", err)
	}
}
