package controlplane

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	agentv1 "lelantos.dev/lelantos/internal/gen/agent/v1"
	"lelantos.dev/lelantos/internal/store"
)

// ImageKeeper keeps, on the control plane's side, the images of sandboxes
// paused with their memory on remote nodes, so that a sandbox whose node is
// gone resumes on another; cmd/lelantos implements it.
type ImageKeeper interface {
	// KeepImage copies the image of paused sandbox sandboxID from node id at
	// address and returns its name (a content address).
	KeepImage(ctx context.Context, id, address, sandboxID string) (string, error)
	// KeepSnapshot copies snapshot snapshotID from node id at address and
	// returns its name.
	KeepSnapshot(ctx context.Context, id, address, snapshotID string) (string, error)
	// DropImage forgets image name.
	DropImage(ctx context.Context, name string) error
}

// keepImage copies the image of sb, just paused with its memory on a remote
// node, to the control plane and returns its name; "" when it is not kept
// (the sandbox's own node, no keeper, or a failure, which is logged: the
// sandbox is paused all the same and resumes on its node).
func (s *Service) keepImage(ctx context.Context, sb *store.Sandbox) string {
	name, err := s.keep(ctx, sb.NodeID, func(keeper ImageKeeper, addr string) (string, error) {
		return keeper.KeepImage(ctx, sb.NodeID, addr, sb.ID)
	})
	switch {
	case err != nil:
		s.log.Warn("keep the image of a paused sandbox; it resumes only on its node", "sandbox", sb.ID, "node", sb.NodeID, "err", err)
	case name != "":
		s.event(ctx, sb.ID, "image of the pause kept by the control plane (%s): the sandbox can resume on another node", name)
	}
	return name
}

// keep copies an image from remote node nodeID with copyFrom, given the
// node's address; "" and no error when nothing is to be kept (the Service's
// own node, or no keeper).
func (s *Service) keep(ctx context.Context, nodeID string, copyFrom func(ImageKeeper, string) (string, error)) (string, error) {
	if nodeID == LocalNodeID || s.cfg.Images == nil {
		return "", nil
	}
	addr, err := s.remoteAddress(ctx, nodeID)
	if err != nil {
		return "", err
	}
	return copyFrom(s.cfg.Images, addr)
}

// keptImage is the name of sandbox id's kept image ("" for none).
func (s *Service) keptImage(ctx context.Context, id string) string {
	if s.cfg.Images == nil {
		return ""
	}
	lc, err := s.store.SandboxLifecycleOf(ctx, id)
	if err != nil {
		s.log.Warn("read the lifecycle of a sandbox", "sandbox", id, "err", err)
		return ""
	}
	return lc.KeptImage
}

// dropKeptImage forgets sandbox id's kept image, once it runs again or ends.
func (s *Service) dropKeptImage(ctx context.Context, id string) {
	if s.cfg.Images == nil {
		return
	}
	lc, err := s.store.SandboxLifecycleOf(ctx, id)
	if err != nil || lc.KeptImage == "" {
		return
	}
	name := lc.KeptImage
	lc.KeptImage = ""
	if err := s.store.PutSandboxLifecycle(context.WithoutCancel(ctx), id, lc); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Warn("forget the kept image of a sandbox", "sandbox", id, "err", err)
		return
	}
	if err := s.cfg.Images.DropImage(context.WithoutCancel(ctx), name); err != nil {
		s.log.Warn("drop a kept image", "image", name, "err", err)
	}
}

// resumeElsewhere starts paused sb on another node than its own from image,
// the one kept at its pause, with its memory and files; why is the failure
// of its own node, returned when no other node takes it. On success sb
// names its new node (the caller saves it); its old node drops its copy
// when it reports again.
func (s *Service) resumeElsewhere(ctx context.Context, sb *store.Sandbox, sp *agentv1.SandboxSpec, image string, why error) (*agentv1.CreateSandboxResponse, error) {
	nodes, err := s.placement(ctx, sb.MemoryMB)
	if err != nil {
		return nil, why
	}
	from := sb.NodeID
	nodes = slices.DeleteFunc(nodes, func(id string) bool { return id == from })
	sp.SnapshotArtifact, sp.SnapshotId, sp.SnapshotImage, sp.StartCmd = image, "", "", ""
	for _, id := range nodes {
		nsp, err := s.specFor(ctx, id, sp)
		if err != nil {
			return nil, err
		}
		resp, err := s.createOn(ctx, id, nsp)
		if err != nil {
			s.log.Warn("resume a sandbox on another node", "sandbox", sb.ID, "node", id, "err", err)
			s.bestEffortKill(ctx, id, sb.ID)
			continue
		}
		sb.NodeID = id
		s.event(ctx, sb.ID, "node %s out of reach (%s): resumed on node %s from the image kept at its pause",
			from, connectMessage(why), id)
		s.log.Info("sandbox resumed on another node", "sandbox", sb.ID, "from", from, "to", id)
		return resp.Msg, nil
	}
	return nil, fmt.Errorf("no other node took it: %w", why)
}

// keepSnapshot copies snapshot snapID, just taken on remote node nodeID, to
// the control plane and returns its name; "" when it is not kept (as
// keepImage).
func (s *Service) keepSnapshot(ctx context.Context, nodeID, snapID string) string {
	name, err := s.keep(ctx, nodeID, func(keeper ImageKeeper, addr string) (string, error) {
		return keeper.KeepSnapshot(ctx, nodeID, addr, snapID)
	})
	if err != nil {
		s.log.Warn("keep a copy of a snapshot; sandboxes start from it only on its node", "snapshot", snapID, "node", nodeID, "err", err)
	}
	return name
}

// snapshotPlacement returns the nodes a sandbox from snap may start on: the
// node that holds the image, then, when the control plane keeps a copy, the
// others as placement ranks them.
func (s *Service) snapshotPlacement(ctx context.Context, snap *store.Snapshot, memoryMB int) ([]string, error) {
	own := s.admitOnNode(ctx, snap.NodeID)
	if snap.KeptImage == "" || s.cfg.Remote == nil {
		if own != nil {
			return nil, own
		}
		return []string{snap.NodeID}, nil
	}
	others, err := s.placement(ctx, memoryMB)
	if err != nil && own != nil {
		return nil, own
	}
	others = slices.DeleteFunc(others, func(id string) bool { return id == snap.NodeID })
	if own != nil {
		return others, nil
	}
	return append([]string{snap.NodeID}, others...), nil
}

// snapshotSpecs gives the spec of a sandbox from snap for each node: sp on
// the node that holds the image, and on others the kept copy
// (snapshot_artifact) with the tree of the snapshot's base template.
func (s *Service) snapshotSpecs(ctx context.Context, snap *store.Snapshot, sp *agentv1.SandboxSpec) func(string) (*agentv1.SandboxSpec, error) {
	return func(id string) (*agentv1.SandboxSpec, error) {
		if id == snap.NodeID {
			return s.specFor(ctx, id, sp)
		}
		base, err := s.treeTemplate(ctx, snap.BaseTemplateID)
		if err != nil {
			return nil, internal("read the base template of snapshot "+snap.ID, err)
		}
		moved := proto.CloneOf(sp)
		moved.SnapshotId, moved.SnapshotArtifact, moved.TemplateRootfs = "", snap.KeptImage, base.RootfsPath
		return s.specFor(ctx, id, moved)
	}
}

// treeTemplate is the template whose tree sandboxes of template id start
// from: id itself, or, for a snapshot template (a snapshot of a sandbox that
// started from a snapshot, say), the base of its newest build, followed
// down to a template that is not a snapshot's. The tree a snapshot template
// records is its source node's path, which another node cannot use.
func (s *Service) treeTemplate(ctx context.Context, id string) (*store.Template, error) {
	for range 16 {
		builds, err := s.store.TemplateSnapshots(ctx, id)
		if err != nil {
			return nil, err
		}
		if len(builds) == 0 {
			return s.store.GetTemplate(ctx, id)
		}
		id = builds[0].BaseTemplateID
	}
	return nil, fmt.Errorf("template %s: snapshots of snapshots nested too deep", id)
}
