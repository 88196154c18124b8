package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"

	agentv1 "lelantos.dev/lelantos/internal/gen/agent/v1"
	"lelantos.dev/lelantos/internal/store"
)

// CreateRequest is what a new sandbox is made from. Zero fields take
// defaults: the "base" template, DefaultTimeout, the gVisor runtime,
// internet access allowed.
type CreateRequest struct {
	// TemplateID is a template's ID or alias.
	TemplateID string
	// Timeout is the sandbox's lifetime from when it is running; 0 means
	// DefaultTimeout. Negative or above MaxTimeout is refused.
	Timeout time.Duration
	// Metadata is returned in listings and filters them.
	Metadata map[string]string
	// EnvVars is the environment of every process started in the sandbox.
	EnvVars map[string]string
	// AutoPause pauses instead of killing the sandbox when its time is up.
	AutoPause bool
	// AutoResume lets traffic to a paused sandbox resume it.
	AutoResume bool
	// AutoPauseFilesOnly makes the pause at the end time keep only the files
	// (E2B's autoPauseMemory=false); it needs AutoPause and excludes AutoResume.
	AutoPauseFilesOnly bool
	// AllowInternetAccess nil means "not set" (allowed).
	AllowInternetAccess *bool
	// Network is the client's network configuration, kept as JSON and
	// returned by the detail; AllowPublicTraffic is its field that matters
	// here: false makes traffic to the sandbox's ports need a token.
	Network            json.RawMessage
	AllowPublicTraffic *bool
	// RuntimeClass is "gvisor" (default) or "runc".
	RuntimeClass string
	// VolumeMounts are volumes of the team to mount read-write, by name.
	VolumeMounts []VolumeMount
}

// timeoutOr returns d or the default lifetime when d is 0, refusing bad ones.
func (s *Service) timeoutOr(field string, d time.Duration) (time.Duration, error) {
	if d < 0 {
		return 0, invalidf("%s: must not be negative", field)
	}
	if d > s.cfg.MaxTimeout {
		return 0, invalidf("%s: must be at most %d seconds", field, int64(s.cfg.MaxTimeout/time.Second))
	}
	if d == 0 {
		return s.cfg.DefaultTimeout, nil
	}
	return d, nil
}

// validateEnvVars refuses names a process environment cannot carry.
func validateEnvVars(env map[string]string) error {
	for k, v := range env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return invalidf("envVars: invalid variable name %q", k)
		}
		if strings.ContainsRune(v, 0) {
			return invalidf("envVars.%s: value contains a NUL byte", k)
		}
	}
	return nil
}

// resolveTemplate finds the template name means for team teamID (its own
// name, alias or ID, else a public template's), and the alias to report.
func (s *Service) resolveTemplate(ctx context.Context, teamID, name string) (*store.Template, string, error) {
	tpl, err := s.findTemplateRef(ctx, teamID, name)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
		return nil, "", invalidf("templateID: template %q not found", name)
	}
	if err != nil {
		return nil, "", internal("read template", err)
	}
	if tpl.Status != "" && tpl.Status != store.TemplateReady {
		return nil, "", invalidf("templateID: template %q is not ready (status %s)", name, tpl.Status)
	}
	alias := ""
	for _, a := range tpl.Aliases {
		if a == name {
			alias = a
			break
		}
	}
	if alias == "" && tpl.Name != tpl.ID {
		alias = tpl.Name
	}
	if alias == "" && len(tpl.Aliases) > 0 {
		alias = tpl.Aliases[0]
	}
	return tpl, alias, nil
}

// create makes a sandbox of team teamID and waits until it runs. The
// template is looked up among the team's own, then the public ones. The
// sandbox is stored as starting first, in the transaction that checks the
// team's quotas (over one is ErrQuota), so a crash in between is repaired by
// Reconcile; when the node fails it is recorded as dead with the reason and
// the node's error is returned with its kind.
func (s *Service) create(ctx context.Context, teamID string, req CreateRequest) (*store.Sandbox, error) {
	timeout, err := s.timeoutOr("timeout", req.Timeout)
	if err != nil {
		return nil, err
	}
	runtime := req.RuntimeClass
	switch runtime {
	case "":
		runtime = RuntimeGVisor
	case RuntimeGVisor, RuntimeRunc:
	default:
		return nil, invalidf("runtimeClass: unknown runtime class %q (want %q or %q)", runtime, RuntimeGVisor, RuntimeRunc)
	}
	if s.cfg.RuntimeClasses != nil && !slices.Contains(s.cfg.RuntimeClasses, runtime) {
		return nil, invalidf("runtimeClass %q is not enabled on this server (lelantos serve --runtime-classes)", runtime)
	}
	if err := validateEnvVars(req.EnvVars); err != nil {
		return nil, err
	}
	for k, v := range req.Metadata {
		if err := checkText("metadata", k); err != nil {
			return nil, err
		}
		if err := checkText("metadata."+k, v); err != nil {
			return nil, err
		}
	}
	if req.AutoPauseFilesOnly && !req.AutoPause {
		return nil, invalidf("autoPauseMemory=false only applies when autoPause is true.")
	}
	if req.AutoPauseFilesOnly && req.AutoResume {
		return nil, invalidf("autoPauseMemory: false cannot be combined with autoResume: traffic never resumes a sandbox paused without its memory")
	}
	if err := checkNetwork(req.AllowInternetAccess, req.Network); err != nil {
		return nil, err
	}
	name := req.TemplateID
	if name == "" {
		name = DefaultTemplate
	}
	// A snapshot's ID or name starts the sandbox from that snapshot.
	tpl, snap, _, err := s.snapshotBuild(ctx, teamID, name)
	if err != nil {
		return nil, err
	}
	var alias string
	if snap != nil {
		if req.RuntimeClass != "" && req.RuntimeClass != snap.RuntimeClass {
			return nil, invalidf("runtimeClass: snapshot %q runs on %q", name, snap.RuntimeClass)
		}
		runtime = snap.RuntimeClass
		if tpl.Name != tpl.ID {
			alias = tpl.Name
		}
	} else if tpl, alias, err = s.resolveTemplate(ctx, teamID, name); err != nil {
		return nil, err
	}
	details, err := s.templateDetails(ctx, tpl)
	if err != nil {
		return nil, err
	}
	mounts, err := s.volumeMounts(ctx, teamID, req.VolumeMounts)
	if err != nil {
		return nil, err
	}

	now := s.now()
	sb := &store.Sandbox{
		ID:                  newSandboxID(),
		TeamID:              teamID,
		TemplateID:          tpl.ID,
		Alias:               alias,
		ClientID:            ClientID,
		RuntimeClass:        runtime,
		WorkloadType:        WorkloadType,
		State:               StateStarting,
		CPUCount:            firstPositive(tpl.CPUCount, s.cfg.DefaultCPU),
		MemoryMB:            firstPositive(tpl.MemoryMB, s.cfg.DefaultMemoryMB),
		DiskSizeMB:          firstPositive(tpl.DiskSizeMB, s.cfg.DefaultDiskSizeMB),
		Metadata:            req.Metadata,
		EnvVars:             req.EnvVars,
		EnvdVersion:         tpl.EnvdVersion,
		EnvdAccessToken:     randomHex(32),
		AllowInternetAccess: req.AllowInternetAccess,
		Network:             rawJSON(req.Network),
		AutoPause:           req.AutoPause,
		AutoResume:          req.AutoResume,
		StartedAt:           now,
		EndAt:               now.Add(timeout),
		NodeID:              LocalNodeID,
		VolumeMounts:        mounts,
	}
	if sb.EnvdVersion == "" {
		sb.EnvdVersion = DefaultEnvdVersion
	}
	if req.AllowPublicTraffic != nil && !*req.AllowPublicTraffic {
		sb.TrafficAccessToken = randomHex(32)
	}

	var nodes []string
	if snap != nil {
		if nodes, err = s.snapshotPlacement(ctx, snap, sb.MemoryMB); err != nil {
			return nil, err
		}
	} else if nodes, err = s.placement(ctx, sb.MemoryMB); err != nil {
		return nil, err
	}
	sb.NodeID = nodes[0]
	// Nobody knows the ID yet, but the reaper and Reconcile might see the
	// row: hold its lock from the start.
	unlock, err := s.lock(ctx, sb.ID)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := s.store.InsertSandboxWithin(ctx, sb, s.cfg.TeamQuotas); err != nil {
		if merr := mountError(err); merr != nil {
			return nil, merr
		}
		return nil, storeError("create sandbox: store", err)
	}
	s.event(ctx, sb.ID, "sandbox created from template %s (%s), runtime %s, %d CPU, %d MB memory, %d MB disk",
		tpl.ID, name, runtime, sb.CPUCount, sb.MemoryMB, sb.DiskSizeMB)
	if err := s.store.PutSandboxLifecycle(ctx, sb.ID, store.SandboxLifecycle{
		AutoPauseMemory: !req.AutoPauseFilesOnly, Timeout: timeout, PausedMemory: true}); err != nil {
		s.log.Warn("store the lifecycle of a sandbox", "sandbox", sb.ID, "err", err)
	}

	sp := spec(sb, tpl, details)
	specOn := func(id string) (*agentv1.SandboxSpec, error) { return s.specFor(ctx, id, sp) }
	if snap != nil {
		sp.SnapshotId, sp.SnapshotImage, sp.StartCmd = snap.ID, "", ""
		specOn = s.snapshotSpecs(ctx, snap, sp)
	}
	resp, err := s.startOn(ctx, sb, nodes, specOn)
	if err != nil {
		s.markDead(ctx, sb, "start failed: "+connectMessage(err))
		s.bestEffortKill(ctx, sb.NodeID, sb.ID)
		return nil, nodeError("create sandbox", sb.ID, err)
	}
	sb.State = StateRunning
	sb.Address = resp.Msg.GetStatus().GetAddress()
	sb.StartedAt = s.now()
	sb.EndAt = sb.StartedAt.Add(timeout)
	if err := s.save(ctx, sb); err != nil {
		// The node runs it but we could not record that: do not leak it.
		s.bestEffortKill(ctx, sb.NodeID, sb.ID)
		return nil, err
	}
	s.event(ctx, sb.ID, "sandbox running on node %s at %s, ends at %s",
		sb.NodeID, sb.Address, sb.EndAt.Format(time.RFC3339))
	return sb, nil
}

// startOn starts sb on the first of nodes that takes it, from the spec
// specOn gives for that node, recording each node it moves on to; a node
// that is full, unreachable or draining passes the sandbox to the next. The
// caller holds sb's lock.
func (s *Service) startOn(ctx context.Context, sb *store.Sandbox, nodes []string, specOn func(string) (*agentv1.SandboxSpec, error)) (*connect.Response[agentv1.CreateSandboxResponse], error) {
	for i, id := range nodes {
		if i > 0 {
			sb.NodeID = id
			if err := s.save(ctx, sb); err != nil {
				return nil, err
			}
		}
		nsp, err := specOn(id)
		if err != nil {
			return nil, err
		}
		resp, err := s.createOn(ctx, id, nsp)
		if err == nil || i == len(nodes)-1 || !movable(err) {
			return resp, err
		}
		s.log.Info("node refused a sandbox; trying the next", "sandbox", sb.ID, "node", id, "err", err)
		s.bestEffortKill(ctx, id, sb.ID)
	}
	return nil, newError(ErrUnavailable, "no node to start sandbox %s on", sb.ID)
}

// createOn asks node id to start a sandbox from sp.
func (s *Service) createOn(ctx context.Context, id string, sp *agentv1.SandboxSpec) (*connect.Response[agentv1.CreateSandboxResponse], error) {
	node, err := s.nodeOf(ctx, id)
	if err != nil {
		return nil, err
	}
	nctx, cancel := s.nodeCtx(ctx)
	defer cancel()
	return node.CreateSandbox(nctx, connect.NewRequest(&agentv1.CreateSandboxRequest{Spec: sp}))
}

// movable reports a node's refusal that another node may not share: it is
// full, or it cannot be reached.
func movable(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind == ErrUnavailable
	}
	switch connect.CodeOf(err) {
	case connect.CodeResourceExhausted, connect.CodeUnavailable:
		return true
	}
	return false
}

// bestEffortKill asks node nodeID to remove a sandbox that is being given up
// on; failures are only logged.
func (s *Service) bestEffortKill(ctx context.Context, nodeID, id string) {
	node, err := s.nodeOf(ctx, nodeID)
	if err != nil {
		s.log.Warn("clean up sandbox on node", "sandbox", id, "node", nodeID, "err", err)
		return
	}
	nctx, cancel := s.nodeCtx(ctx)
	defer cancel()
	_, err = node.KillSandbox(nctx, connect.NewRequest(&agentv1.KillSandboxRequest{SandboxId: id}))
	if err != nil && connect.CodeOf(err) != connect.CodeNotFound {
		s.log.Warn("clean up sandbox on node", "sandbox", id, "err", err)
	}
}

// connectMessage is the message of a connect error without its code prefix.
func connectMessage(err error) string {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return fmt.Sprintf("%s (%s)", ce.Message(), ce.Code())
	}
	return err.Error()
}

// firstPositive returns a if it is positive, else b.
func firstPositive(a, b int) int {
	if a > 0 {
		return a
	}
	return b
}
