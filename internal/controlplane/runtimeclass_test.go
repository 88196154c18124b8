package controlplane

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
)

// TestRuntimeClassesEnabled: a create may only ask for a runtime class the server
// enables; any other is refused as invalid (a 400) naming the class and the flag.
func TestRuntimeClassesEnabled(t *testing.T) {
	tests := []struct {
		name    string
		enabled []string
		ask     string
		want    string // runtime class created, or "" for a refusal
	}{
		{name: "default server, default class", enabled: []string{RuntimeGVisor}, ask: "", want: RuntimeGVisor},
		{name: "default server, gvisor", enabled: []string{RuntimeGVisor}, ask: RuntimeGVisor, want: RuntimeGVisor},
		{name: "default server, runc", enabled: []string{RuntimeGVisor}, ask: RuntimeRunc},
		{name: "runc enabled", enabled: []string{RuntimeGVisor, RuntimeRunc}, ask: RuntimeRunc, want: RuntimeRunc},
		{name: "no list: every class", enabled: nil, ask: RuntimeRunc, want: RuntimeRunc},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			svc, err := New(Config{Clock: h.clock.Now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
				RuntimeClasses: tt.enabled}, h.db, h.node)
			if err != nil {
				t.Fatal(err)
			}
			sb, err := svc.Create(context.Background(), defTeam, CreateRequest{RuntimeClass: tt.ask})
			if tt.want == "" {
				want := `runtimeClass "` + tt.ask + `" is not enabled on this server (lelantos serve --runtime-classes)`
				if !errors.Is(err, ErrInvalidArgument) || err.Error() != want {
					t.Fatalf("create %q: %v, want ErrInvalidArgument %q", tt.ask, err, want)
				}
				if n := h.node.Calls("create"); n != 0 {
					t.Errorf("the node got %d sandboxes for a refused create", n)
				}
				return
			}
			if err != nil || sb.RuntimeClass != tt.want {
				t.Fatalf("create %q: %+v %v, want runtime %q", tt.ask, sb, err, tt.want)
			}
		})
	}
}

// TestRuntimeClassesConfig: the list must name known classes and hold the default.
func TestRuntimeClassesConfig(t *testing.T) {
	for _, tt := range []struct {
		classes []string
		want    string
	}{
		{[]string{RuntimeRunc}, `must include "gvisor"`},
		{[]string{RuntimeGVisor, "kata"}, `unknown runtime class "kata"`},
		{[]string{}, `must include "gvisor"`},
	} {
		h := newHarness(t)
		_, err := New(Config{RuntimeClasses: tt.classes}, h.db, h.node)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("RuntimeClasses %v: %v, want an error containing %q", tt.classes, err, tt.want)
		}
	}
}
