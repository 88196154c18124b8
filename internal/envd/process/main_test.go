package process

import (
	"context"
	"fmt"
	"os"
	"testing"

	"lelantos.dev/lelantos/internal/envd/reaper"
)

// testReaper is the one reaper of the test binary: two reapers in one process
// would take each other's children.
var testReaper *reaper.Reaper

func TestMain(m *testing.M) {
	if err := reaper.BecomeSubreaper(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testReaper = reaper.New()
	ctx, cancel := context.WithCancel(context.Background())
	go testReaper.Run(ctx)
	code := m.Run()
	cancel()
	os.Exit(code)
}
