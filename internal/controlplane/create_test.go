package controlplane

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"lelantos.dev/lelantos/internal/controlplane/controlplanetest"
	agentv1 "lelantos.dev/lelantos/internal/gen/agent/v1"
)

var idPattern = regexp.MustCompile(`^[a-z0-9]{20}$`)

func ptr[T any](v T) *T { return &v }

func TestCreate(t *testing.T) {
	tests := []struct {
		name                       string
		req                        CreateRequest
		wantTemplate, wantAlias    string
		wantCPU, wantMem, wantDisk int
		wantEnvd, wantRuntime      string
		wantTimeout                time.Duration
		wantTrafficToken           bool
	}{
		{name: "defaults", req: CreateRequest{},
			wantTemplate: "base", wantCPU: 2, wantMem: 512, wantDisk: 2048,
			wantEnvd: DefaultEnvdVersion, wantRuntime: "gvisor", wantTimeout: 300 * time.Second},
		{name: "template by alias", req: CreateRequest{TemplateID: "large", Timeout: time.Hour, RuntimeClass: "runc"},
			wantTemplate: "big", wantAlias: "large", wantCPU: 4, wantMem: 1024, wantDisk: 4096,
			wantEnvd: "0.6.9", wantRuntime: "runc", wantTimeout: time.Hour},
		{name: "template by id reports its alias", req: CreateRequest{TemplateID: "big"},
			wantTemplate: "big", wantAlias: "large", wantCPU: 4, wantMem: 1024, wantDisk: 4096,
			wantEnvd: "0.6.9", wantRuntime: "gvisor", wantTimeout: 300 * time.Second},
		{name: "private traffic gets a token", req: CreateRequest{AllowPublicTraffic: ptr(false), Timeout: 86400 * time.Second},
			wantTemplate: "base", wantCPU: 2, wantMem: 512, wantDisk: 2048, wantEnvd: DefaultEnvdVersion,
			wantRuntime: "gvisor", wantTimeout: 24 * time.Hour, wantTrafficToken: true},
		{name: "public traffic explicitly", req: CreateRequest{AllowPublicTraffic: ptr(true)},
			wantTemplate: "base", wantCPU: 2, wantMem: 512, wantDisk: 2048, wantEnvd: DefaultEnvdVersion,
			wantRuntime: "gvisor", wantTimeout: 300 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			sb := h.create(t, tt.req)
			if !idPattern.MatchString(sb.ID) {
				t.Errorf("ID %q does not match %s", sb.ID, idPattern)
			}
			if sb.State != StateRunning || sb.Address == "" {
				t.Errorf("state %q address %q, want running with an address", sb.State, sb.Address)
			}
			if sb.TemplateID != tt.wantTemplate || sb.Alias != tt.wantAlias {
				t.Errorf("template %q alias %q, want %q %q", sb.TemplateID, sb.Alias, tt.wantTemplate, tt.wantAlias)
			}
			if sb.CPUCount != tt.wantCPU || sb.MemoryMB != tt.wantMem || sb.DiskSizeMB != tt.wantDisk {
				t.Errorf("size %d/%d/%d, want %d/%d/%d", sb.CPUCount, sb.MemoryMB, sb.DiskSizeMB, tt.wantCPU, tt.wantMem, tt.wantDisk)
			}
			if sb.EnvdVersion != tt.wantEnvd || sb.RuntimeClass != tt.wantRuntime {
				t.Errorf("envd %q runtime %q, want %q %q", sb.EnvdVersion, sb.RuntimeClass, tt.wantEnvd, tt.wantRuntime)
			}
			if got := sb.EndAt.Sub(h.clock.Now()); got != tt.wantTimeout {
				t.Errorf("end - now = %s, want %s", got, tt.wantTimeout)
			}
			if len(sb.EnvdAccessToken) != 64 {
				t.Errorf("envd access token %q, want 64 hex digits", sb.EnvdAccessToken)
			}
			if (sb.TrafficAccessToken != "") != tt.wantTrafficToken {
				t.Errorf("traffic token %q, want present=%v", sb.TrafficAccessToken, tt.wantTrafficToken)
			}
			if sb.ClientID != ClientID || sb.WorkloadType != "compute" || sb.NodeID != LocalNodeID {
				t.Errorf("clientID %q workload %q node %q", sb.ClientID, sb.WorkloadType, sb.NodeID)
			}
			got := h.stored(t, sb.ID)
			if got == nil || got.State != StateRunning || !got.EndAt.Equal(sb.EndAt) || got.Address != sb.Address {
				t.Fatalf("stored %+v, want the returned running sandbox", got)
			}
			if st, ok := h.node.State(sb.ID); !ok || st != agentv1.SandboxState_SANDBOX_STATE_RUNNING {
				t.Errorf("node state %v %v, want running", st, ok)
			}
			lines, err := h.svc.Logs(context.Background(), defTeam, sb.ID, LogQuery{Limit: 100})
			if err != nil || len(lines) < 2 || !strings.Contains(lines[0].Message, "created") {
				t.Errorf("logs %v %v, want creation events", lines, err)
			}
		})
	}
}

func TestCreateSpecReachesNode(t *testing.T) {
	h := newHarness(t)
	sb := h.create(t, CreateRequest{TemplateID: "large", EnvVars: map[string]string{"A": "1"},
		AllowInternetAccess: ptr(false), RuntimeClass: "runc"})
	resp, err := h.node.ListSandboxes(context.Background(), connect.NewRequest(&agentv1.ListSandboxesRequest{}))
	if err != nil || len(resp.Msg.Sandboxes) != 1 {
		t.Fatalf("node list: %v %v", resp, err)
	}
	sp := resp.Msg.Sandboxes[0].Spec
	if sp.SandboxId != sb.ID || sp.TemplateId != "big" || sp.TemplateRootfs != "/var/lib/lelantos/big" ||
		sp.RuntimeClass != "runc" || sp.CpuCount != 4 || sp.MemoryMb != 1024 || sp.DiskSizeMb != 4096 ||
		sp.EnvVars["A"] != "1" || sp.EnvdAccessToken != sb.EnvdAccessToken || sp.AllowInternetAccess ||
		sp.StartCmd != "serve" {
		t.Errorf("node got spec %v", sp)
	}
}

func TestCreateInvalid(t *testing.T) {
	tests := []struct {
		name      string
		req       CreateRequest
		wantField string
	}{
		{"negative timeout", CreateRequest{Timeout: -time.Second}, "timeout"},
		{"timeout above max", CreateRequest{Timeout: 24*time.Hour + time.Second}, "timeout"},
		{"unknown template", CreateRequest{TemplateID: "nope"}, `templateID: template "nope" not found`},
		{"template not ready", CreateRequest{TemplateID: "wip"}, "templateID"},
		{"unknown runtime", CreateRequest{RuntimeClass: "kata"}, "runtimeClass"},
		{"empty env name", CreateRequest{EnvVars: map[string]string{"": "x"}}, "envVars"},
		{"env name with =", CreateRequest{EnvVars: map[string]string{"A=B": "x"}}, "envVars"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			_, err := h.svc.Create(context.Background(), defTeam, tt.req)
			if !errors.Is(err, ErrInvalidArgument) || !strings.HasPrefix(err.Error(), tt.wantField) {
				t.Fatalf("err = %v, want invalid argument starting with %q", err, tt.wantField)
			}
			if h.node.Calls(controlplanetest.OpCreate) != 0 {
				t.Errorf("node was asked to create")
			}
		})
	}
}

func TestCreateNodeFailure(t *testing.T) {
	tests := []struct {
		code     connect.Code
		wantKind error
	}{
		{connect.CodeInvalidArgument, ErrInvalidArgument},
		{connect.CodeNotFound, ErrNotFound},
		{connect.CodeFailedPrecondition, ErrConflict},
		{connect.CodeAlreadyExists, ErrConflict},
		{connect.CodeAborted, ErrConflict},
		{connect.CodeResourceExhausted, ErrUnavailable},
		{connect.CodeUnavailable, ErrUnavailable},
		{connect.CodeDeadlineExceeded, ErrUnavailable},
		{connect.CodeInternal, nil},
		{connect.CodeUnknown, nil},
	}
	for _, tt := range tests {
		t.Run(tt.code.String(), func(t *testing.T) {
			h := newHarness(t)
			h.node.Fail(controlplanetest.OpCreate, connect.NewError(tt.code, errors.New("boom")))
			_, err := h.svc.Create(context.Background(), defTeam, CreateRequest{})
			if err == nil || !strings.Contains(err.Error(), "create sandbox") || !strings.Contains(err.Error(), "boom") {
				t.Fatalf("err = %v, want one naming the operation and the node's message", err)
			}
			for _, kind := range []error{ErrInvalidArgument, ErrNotFound, ErrConflict, ErrUnavailable, ErrQuota} {
				if errors.Is(err, kind) != (kind == tt.wantKind) {
					t.Errorf("errors.Is(err, %v) = %v", kind, errors.Is(err, kind))
				}
			}
			all, _, _ := h.db.ListSandboxes(context.Background(), storeFilterAll())
			if len(all) != 1 || all[0].State != StateDead || !strings.Contains(all[0].EndReason, "boom") {
				t.Fatalf("stored %+v, want one dead sandbox with the reason", all)
			}
			if _, err := h.svc.Get(context.Background(), defTeam, all[0].ID); !errors.Is(err, ErrNotFound) {
				t.Errorf("get dead sandbox: %v, want not found", err)
			}
			if items, _, _ := h.svc.List(context.Background(), defTeam, ListRequest{}); len(items) != 0 {
				t.Errorf("dead sandbox listed: %v", items)
			}
			if lines, err := h.svc.Logs(context.Background(), defTeam, all[0].ID, LogQuery{Limit: 10}); err != nil ||
				!strings.Contains(lines[len(lines)-1].Message, "died") {
				t.Errorf("logs of dead sandbox: %v %v", lines, err)
			}
		})
	}
}

// TestNodeFullIsUnavailable: a node out of capacity refuses creates,
// resumes and connects with its own message, as ErrUnavailable (a 503),
// never an internal error; the sandbox keeps its state.
func TestNodeFullIsUnavailable(t *testing.T) {
	ctx := context.Background()
	full := connect.NewError(connect.CodeResourceExhausted, errors.New("node full: 7.5 GiB of 8 GiB memory committed, sandbox asks 1 GiB"))
	h := newHarness(t)
	paused := h.create(t, CreateRequest{})
	if err := h.svc.Pause(ctx, defTeam, paused.ID); err != nil {
		t.Fatal(err)
	}
	h.node.Fail(controlplanetest.OpCreate, full)
	h.node.Fail(controlplanetest.OpResume, full)
	calls := []struct {
		name string
		call func() error
	}{
		{"create", func() error { _, err := h.svc.Create(ctx, defTeam, CreateRequest{}); return err }},
		{"resume", func() error { _, err := h.svc.Resume(ctx, defTeam, paused.ID, ResumeRequest{}); return err }},
		{"connect", func() error { _, _, err := h.svc.Connect(ctx, defTeam, paused.ID, 0); return err }},
	}
	for _, c := range calls {
		err := c.call()
		var ce *Error
		if !errors.Is(err, ErrUnavailable) || !errors.As(err, &ce) || !strings.Contains(ce.Message, "node full: 7.5 GiB") {
			t.Errorf("%s on a full node: %v, want ErrUnavailable with the node's message", c.name, err)
		}
	}
	if got := h.stored(t, paused.ID); got.State != StatePaused {
		t.Errorf("paused sandbox after refused resumes: %s", got.State)
	}
}
