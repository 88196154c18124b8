package runc

import (
	"context"
	"errors"
	"os"
	"testing"

	"lelantos.dev/lelantos/internal/runtime/oci"
)

func TestIDLeases(t *testing.T) {
	ctx := context.Background()
	l := &idLeases{dir: t.TempDir(), base: 1_000_000, ranges: 2, starting: map[string]bool{}}
	alive := map[string]bool{}
	live := func(context.Context) (map[string]bool, error) { return alive, nil }
	steps := []struct {
		name    string
		do      func() (oci.IDRange, error)
		want    oci.IDRange
		wantErr error
	}{
		{"first sandbox gets the first range", func() (oci.IDRange, error) { return l.acquire(ctx, "a", live) }, oci.IDRange{Host: 1_000_000, Size: IDRangeSize}, nil},
		{"second sandbox gets the next", func() (oci.IDRange, error) { return l.acquire(ctx, "b", live) }, oci.IDRange{Host: 1_000_000 + IDRangeSize, Size: IDRangeSize}, nil},
		{"a starting sandbox's range is not reclaimed", func() (oci.IDRange, error) { return l.acquire(ctx, "c", live) }, oci.IDRange{}, ErrNoIDRange},
		{"a released range is reused", func() (oci.IDRange, error) {
			l.done("a")
			if err := l.release("a"); err != nil {
				return oci.IDRange{}, err
			}
			return l.acquire(ctx, "c", live)
		}, oci.IDRange{Host: 1_000_000, Size: IDRangeSize}, nil},
		{"the range of a sandbox runc lost is reclaimed", func() (oci.IDRange, error) {
			l.done("b")
			l.done("c")
			alive["c"] = true // runc holds c, not b
			return l.acquire(ctx, "d", live)
		}, oci.IDRange{Host: 1_000_000 + IDRangeSize, Size: IDRangeSize}, nil},
		{"ranges runc holds are kept", func() (oci.IDRange, error) {
			l.done("d")
			alive["d"] = true
			return l.acquire(ctx, "e", live)
		}, oci.IDRange{}, ErrNoIDRange},
	}
	for _, s := range steps {
		got, err := s.do()
		if !errors.Is(err, s.wantErr) || got != s.want {
			t.Fatalf("%s: got %+v %v, want %+v %v", s.name, got, err, s.want, s.wantErr)
		}
	}
	if len(l.starting) != 0 {
		t.Errorf("sandboxes still marked starting: %v", l.starting)
	}
	if _, err := os.Stat(l.path(0)); err != nil {
		t.Errorf("lease of c: %v", err)
	}
}
