package controlplane

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"

	"connectrpc.com/connect"

	"lelantos.dev/lelantos/internal/controlplane/controlplanetest"
	agentv1 "lelantos.dev/lelantos/internal/gen/agent/v1"
	"lelantos.dev/lelantos/internal/proxy"
)

// probingNode resolves the sandbox through the Service while the node is
// killing it, as the proxy would for a client's request at that moment.
type probingNode struct {
	*controlplanetest.Node
	svc *Service
	got error // the resolver's answer during the kill
}

func (n *probingNode) KillSandbox(ctx context.Context, req *connect.Request[agentv1.KillSandboxRequest]) (*connect.Response[agentv1.KillSandboxResponse], error) {
	_, n.got = n.svc.ResolveSandbox(ctx, req.Msg.GetSandboxId())
	return n.Node.KillSandbox(ctx, req)
}

// TestKillStopsRoutingFirst: while the node kills a sandbox the proxy no
// longer reaches it (a client's health check gets the 502 of a gone sandbox
// at once); a kill the node refuses leaves it running and routed, one the node
// did not answer in time leaves it killed.
func TestKillStopsRoutingFirst(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	node := &probingNode{Node: h.node}
	svc, err := New(Config{Domain: "sb.example.test", Clock: h.clock.Now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, h.db, node)
	if err != nil {
		t.Fatal(err)
	}
	node.svc = svc
	create := func() string {
		sb, err := svc.Create(ctx, defTeam, CreateRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return sb.ID
	}

	for _, tc := range []struct {
		name       string
		nodeErr    error
		wantErr    error
		wantState  string // "" when the record is gone
		wantRouted bool
	}{
		{"the node kills it", nil, nil, "", false},
		{"the node refuses", connect.NewError(connect.CodeUnavailable, errors.New("node down")), ErrUnavailable, StateRunning, true},
		{"the node does not answer", connect.NewError(connect.CodeDeadlineExceeded, errors.New("slow")), ErrUnavailable, StateKilled, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := create()
			h.node.Fail(controlplanetest.OpKill, tc.nodeErr)
			defer h.node.Fail(controlplanetest.OpKill, nil)
			node.got = nil
			if err := svc.Kill(ctx, defTeam, id); !errors.Is(err, tc.wantErr) && !(err == nil && tc.wantErr == nil) {
				t.Fatalf("kill: %v, want %v", err, tc.wantErr)
			}
			if !errors.Is(node.got, proxy.ErrSandboxNotFound) {
				t.Errorf("resolve during the kill: %v, want ErrSandboxNotFound", node.got)
			}
			sb := h.stored(t, id)
			switch {
			case tc.wantState == "" && sb != nil:
				t.Errorf("record left: %+v", sb)
			case tc.wantState != "" && (sb == nil || sb.State != tc.wantState):
				t.Errorf("record %+v, want state %s", sb, tc.wantState)
			}
			_, rerr := svc.ResolveSandbox(ctx, id)
			if routed := rerr == nil; routed != tc.wantRouted {
				t.Errorf("routed after the kill: %v (%v), want %v", routed, rerr, tc.wantRouted)
			}
		})
	}
}
