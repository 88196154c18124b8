package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"

	"lelantos.dev/lelantos/internal/telemetry"
)

// TestTelemetryFlags: --metrics-listen takes host:port or "" (off), and the
// default is loopback; the listener binds at start, a busy chosen address
// fails the start while a busy default only turns /metrics off; a bad
// --otlp-endpoint fails naming the flag.
func TestTelemetryFlags(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests := []struct {
		name      string
		args      []string
		defaultTo string // replaces the default address, to test a busy default
		parseErr  string
		startErr  string
		serving   bool
	}{
		{name: "default", args: nil, serving: true},
		{name: "off", args: []string{"--metrics-listen", ""}},
		{name: "chosen", args: []string{"--metrics-listen", "127.0.0.1:0"}, serving: true},
		{name: "not host:port", args: []string{"--metrics-listen", "9090"}, parseErr: "metrics-listen"},
		{name: "chosen and busy", args: []string{"--metrics-listen", busy.Addr().String()}, startErr: "--metrics-listen"},
		{name: "default busy", defaultTo: busy.Addr().String()},
		{name: "bad collector", args: []string{"--otlp-endpoint", "collector:4318"}, startErr: "--otlp-endpoint"},
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f telemetryFlags
			fs := flag.NewFlagSet("serve", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			f.register(fs)
			if f.metricsListen != defaultMetricsListen || !strings.HasPrefix(defaultMetricsListen, "127.0.0.1:") {
				t.Fatalf("default %q, want loopback", f.metricsListen)
			}
			err := fs.Parse(tt.args)
			if tt.parseErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.parseErr) {
					t.Fatalf("parse = %v, want an error naming %s", err, tt.parseErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !f.metricsChosen {
				// The real default may be taken by another server on this
				// machine; tests use a free or a busy one.
				f.metricsListen = "127.0.0.1:0"
				if tt.defaultTo != "" {
					f.metricsListen = tt.defaultTo
				}
			}
			tel, err := startTelemetry(context.Background(), f, log)
			if tt.startErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.startErr) {
					t.Fatalf("start = %v, want an error naming %s", err, tt.startErr)
				}
				if strings.Contains(tt.startErr, "otlp") && !errors.Is(err, telemetry.ErrTracingConfig) {
					t.Fatalf("start = %v, want ErrTracingConfig", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer tel.close()
			if (tel.ln != nil) != tt.serving {
				t.Fatalf("serving /metrics: %v, want %v", tel.ln != nil, tt.serving)
			}
			if tel.tracerProvider() != nil {
				t.Fatal("tracing is on without a collector")
			}
		})
	}
}
