package agent

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"connectrpc.com/connect"

	"lelantos.dev/lelantos/internal/engine"
	"lelantos.dev/lelantos/internal/network"
	"lelantos.dev/lelantos/internal/runtime"
)

// TestToConnect: every engine error the control plane branches on reaches it as
// its RPC code, with the engine's message.
func TestToConnect(t *testing.T) {
	tests := []struct {
		err  error
		want connect.Code
	}{
		{fmt.Errorf("kill sandbox a: %w", engine.ErrNotFound), connect.CodeNotFound},
		{fmt.Errorf("create sandbox a: %w", engine.ErrExists), connect.CodeAlreadyExists},
		{fmt.Errorf("create sandbox a: %w", engine.ErrInvalid), connect.CodeInvalidArgument},
		{fmt.Errorf("pause sandbox a: %w", engine.ErrState), connect.CodeFailedPrecondition},
		{fmt.Errorf("fork sandbox a: %w", &runtime.UnsupportedError{Class: "runc", Operation: "fork"}), connect.CodeFailedPrecondition},
		{fmt.Errorf("create sandbox a: %w: 7.5 GiB of 8 GiB memory committed, sandbox asks 1 GiB", engine.ErrNodeFull), connect.CodeResourceExhausted},
		{fmt.Errorf("setup network for a: %w", network.ErrExhausted), connect.CodeResourceExhausted},
		{fmt.Errorf("create sandbox a: %w", context.DeadlineExceeded), connect.CodeDeadlineExceeded},
		{fmt.Errorf("setup network for a: %w", network.ErrInvalidEgress), connect.CodeInvalidArgument},
		{errors.New("disk on fire"), connect.CodeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			got := toConnect(tt.err)
			var ce *connect.Error
			if !errors.As(got, &ce) || ce.Code() != tt.want || ce.Message() != tt.err.Error() {
				t.Fatalf("toConnect = %v, want code %v with message %q", got, tt.want, tt.err.Error())
			}
		})
	}
	if toConnect(nil) != nil {
		t.Fatal("toConnect(nil) is not nil")
	}
}

// TestSpecRoundTrip: every field of a spec crosses the RPC, the snapshot to start
// from included.
func TestSpecRoundTrip(t *testing.T) {
	tests := []engine.Spec{
		{ID: "a", TemplateID: "base", RootfsPath: "/t", RuntimeClass: "gvisor", CPUCount: 2, MemoryMB: 512, DiskSizeMB: 1024,
			EnvVars: map[string]string{"K": "V"}, AccessToken: "tok", AllowInternet: true, DefaultUser: "user",
			DefaultWorkdir: "/home/user", StartCmd: "serve", SnapshotImage: "/snap"},
		{ID: "b", Snapshot: "snapone", AccessToken: "tok-b"},
	}
	for _, want := range tests {
		t.Run(want.ID, func(t *testing.T) {
			got := specFromProto(specToProto(want))
			if got.ID != want.ID || got.Snapshot != want.Snapshot || got.SnapshotImage != want.SnapshotImage ||
				got.AccessToken != want.AccessToken || got.RootfsPath != want.RootfsPath || got.MemoryMB != want.MemoryMB ||
				got.StartCmd != want.StartCmd || got.AllowInternet != want.AllowInternet || len(got.EnvVars) != len(want.EnvVars) {
				t.Fatalf("round trip: got %+v, want %+v", got, want)
			}
		})
	}
}
