package template

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestSlots: n builds run, q wait, the rest are refused; a cancelled wait and a
// second release give their place back once.
func TestSlots(t *testing.T) {
	s := newSlots(1, 1)
	ctx := context.Background()
	a, err := s.take()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.wait(ctx, func() { t.Error("the first build waited") }); err != nil {
		t.Fatal(err)
	}
	b, err := s.take()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.take(); !errors.Is(err, ErrBusy) {
		t.Fatalf("third take: %v, want ErrBusy", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	waited := false
	if err := b.wait(cctx, func() { waited = true }); !errors.Is(err, context.DeadlineExceeded) || !waited {
		t.Fatalf("wait while the slot is held: %v (waited %v)", err, waited)
	}
	b.release()
	b.release()
	c, err := s.take()
	if err != nil {
		t.Fatalf("take after a cancelled wait: %v", err)
	}
	started := make(chan struct{})
	go func() {
		_ = c.wait(ctx, func() {})
		close(started)
	}()
	select {
	case <-started:
		t.Fatal("a build ran while the slot was held")
	case <-time.After(50 * time.Millisecond):
	}
	a.release()
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting build did not start when the slot was freed")
	}
	if _, err := s.take(); err != nil {
		t.Errorf("take with one running: %v", err)
	}
	if _, err := s.take(); !errors.Is(err, ErrBusy) {
		t.Errorf("take past the queue: %v", err)
	}
}

// TestSlotsInOrder: builds run in the order their places were taken, even
// when a later one comes to wait before an earlier one.
func TestSlotsInOrder(t *testing.T) {
	s := newSlots(1, 1)
	ctx := context.Background()
	first, err := s.take()
	if err != nil {
		t.Fatal(err)
	}
	second, err := s.take()
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := second.wait(cctx, func() {}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the second build, waiting first: %v, want it to wait for the first", err)
	}
	if err := first.wait(ctx, func() { t.Error("the first build waited for the second") }); err != nil {
		t.Fatal(err)
	}
}
