package main

import (
	"flag"
	"io"
	"strings"
	"testing"

	"lelantos.dev/lelantos/internal/engine"
)

// TestNodeLimitsFlags: the defaults are the engine's, and each bad value is refused
// with its flag's name.
func TestNodeLimitsFlags(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
	}{
		{nil, ""},
		{[]string{"--node-cpus", "8", "--node-memory-mb", "4096", "--cpu-overcommit", "2.5", "--log-cap-mb", "64"}, ""},
		{[]string{"--log-cap-mb", "0"}, "--log-cap-mb"},
		{[]string{"--node-cpus", "-1"}, "--node-cpus"},
		{[]string{"--node-memory-mb", "-5"}, "--node-memory-mb"},
		{[]string{"--memory-reserve-mb", "-1"}, "--memory-reserve-mb"},
		{[]string{"--cpu-overcommit", "0"}, "--cpu-overcommit"},
		{[]string{"--memory-overcommit", "-1"}, "--memory-overcommit"},
		{[]string{"--dns-rate", "0"}, "--dns-rate"},
		{[]string{"--dns-burst", "-3"}, "--dns-burst"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var l nodeLimits
			fs := flag.NewFlagSet("serve", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			l.register(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			err := l.check()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("check: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("check: %v, want an error naming %s", err, tt.wantErr)
			}
		})
	}
	var l nodeLimits
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	l.register(fs)
	var o engine.Options
	l.applyEngine(&o)
	if o.LogCap != engine.DefaultLogCap || o.CPUOvercommit != engine.DefaultCPUOvercommit ||
		o.MemoryOvercommit != engine.DefaultMemoryOvercommit || o.MemoryReserveMB != engine.DefaultMemoryReserveMB {
		t.Errorf("defaults give %+v, want the engine's", o)
	}
}
