package controlplane

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	agentv1 "lelantos.dev/lelantos/internal/gen/agent/v1"
	"lelantos.dev/lelantos/internal/proxy"
	"lelantos.dev/lelantos/internal/store"
)

// RemoteNodes reaches the nodes that run on their own machines (lelantos
// node) and report to the control plane by heartbeats; cmd/lelantos
// implements it over mutual TLS. Implementations keep their connections:
// the Service asks again for every call.
type RemoteNodes interface {
	// Agent returns the agent client of node id, reached at address; the
	// node must prove it is id.
	Agent(id, address string) (Node, error)
	// Tunnel returns what dials the sandboxes of node id at address.
	Tunnel(id, address string) (proxy.Tunnel, error)
}

// Artifacts names trees of this machine by their content, for nodes that
// fetch them; *artifact.Index implements it.
type Artifacts interface {
	Name(ctx context.Context, dir string) (string, error)
}

// specFor returns sp as node id takes it: a remote node gets the template's
// tree by name (Artifacts) instead of a path of this machine, no template
// snapshot (it is on this machine's node), and, starting from a snapshot of
// its own, no tree at all (the snapshot's is used).
func (s *Service) specFor(ctx context.Context, id string, sp *agentv1.SandboxSpec) (*agentv1.SandboxSpec, error) {
	if id == LocalNodeID {
		return sp, nil
	}
	out := proto.CloneOf(sp)
	out.SnapshotImage = ""
	switch {
	case out.GetSnapshotId() != "":
		out.TemplateRootfs = ""
	case s.cfg.Artifacts != nil && out.GetTemplateRootfs() != "":
		name, err := s.cfg.Artifacts.Name(ctx, out.GetTemplateRootfs())
		if err != nil {
			return nil, internal("name the tree of template "+out.GetTemplateId(), err)
		}
		out.TemplateArtifact, out.TemplateRootfs = name, ""
	}
	return out, nil
}

// nodeOf returns the client of node id: the Service's own node for
// LocalNodeID, else the remote node at the address it last reported. A node
// the Service cannot reach is ErrUnavailable.
func (s *Service) nodeOf(ctx context.Context, id string) (Node, error) {
	if id == LocalNodeID {
		if s.node == nil {
			return nil, newError(ErrUnavailable, "node %s: this control plane runs no node of its own", id)
		}
		return s.node, nil
	}
	addr, err := s.remoteAddress(ctx, id)
	if err != nil {
		return nil, err
	}
	n, err := s.cfg.Remote.Agent(id, addr)
	if err != nil {
		return nil, &Error{Kind: ErrUnavailable, Message: "reach node " + id, Cause: err}
	}
	return n, nil
}

// tunnelOf returns the tunnel to the sandboxes of remote node id (nil for
// the Service's own node, whose sandbox addresses are dialled directly).
func (s *Service) tunnelOf(ctx context.Context, id string) (proxy.Tunnel, error) {
	if id == LocalNodeID {
		return nil, nil
	}
	addr, err := s.remoteAddress(ctx, id)
	if err != nil {
		return nil, err
	}
	t, err := s.cfg.Remote.Tunnel(id, addr)
	if err != nil {
		return nil, &Error{Kind: ErrUnavailable, Message: "reach the sandboxes of node " + id, Cause: err}
	}
	return t, nil
}

// remoteAddress is the agent address remote node id last reported, read
// from the store at most once per nodeAddrTTL.
func (s *Service) remoteAddress(ctx context.Context, id string) (string, error) {
	if s.cfg.Remote == nil {
		return "", newError(ErrUnavailable, "node %s: this control plane reaches no other nodes", id)
	}
	now := time.Now()
	addr, silence, ok := s.nodeAddrs.get(id, now)
	if !ok {
		n, err := s.store.GetNode(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return "", newError(ErrUnavailable, "node %s has never reported", id)
		case err != nil:
			return "", internal("read node "+id, err)
		}
		addr, silence = n.Address, n.Silence
		s.nodeAddrs.put(id, addr, silence, now)
	}
	switch {
	case addr == "":
		return "", newError(ErrUnavailable, "node %s reported no agent address", id)
	case silence > s.cfg.NodeLostAfter:
		return "", lostNode(id, silence)
	}
	return addr, nil
}

// lostNode is the error of a call that needs node id, silent for silence.
func lostNode(id string, silence time.Duration) error {
	return newError(ErrUnavailable, "node %s is lost: it has not reported for %s; its sandboxes are back when it reports again",
		id, silence.Round(time.Second))
}

// forNode calls fn for every live sandbox of node id (see liveStates).
func (s *Service) forNode(ctx context.Context, id string, fn func(*store.Sandbox)) error {
	return s.forEach(ctx, store.SandboxFilter{States: liveStates}, func(sb *store.Sandbox) error {
		if sb.NodeID == id {
			fn(sb)
		}
		return nil
	})
}

// watchNodes records in the log of every live sandbox of a remote node that
// it is lost, once per silence: lost holds the nodes already told of, and
// forgets a node that reported again (NodeReported tells of its return).
func (s *Service) watchNodes(ctx context.Context, lost map[string]bool) {
	nodes, err := s.store.ListNodes(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("watch nodes", "err", err)
		}
		return
	}
	for _, n := range nodes {
		switch silent := n.Silence > s.cfg.NodeLostAfter; {
		case n.ID == LocalNodeID:
		case !silent:
			delete(lost, n.ID)
		case !lost[n.ID]:
			lost[n.ID] = true
			s.log.Warn("node lost: its sandboxes are out of reach until it reports again", "node", n.ID, "silence", n.Silence)
			err := s.forNode(ctx, n.ID, func(sb *store.Sandbox) {
				s.event(ctx, sb.ID, "node %s lost: no report for %s; the sandbox is out of reach until it reports again",
					n.ID, n.Silence.Round(time.Second))
			})
			if err != nil && ctx.Err() == nil {
				s.log.Warn("tell the sandboxes of a lost node", "node", n.ID, "err", err)
			}
		}
	}
}

// nodeIDs lists the nodes whose sandboxes the Service tends: its own (when
// it runs one) and every remote node that ever reported.
func (s *Service) nodeIDs(ctx context.Context) ([]string, error) {
	var ids []string
	if s.node != nil {
		ids = append(ids, LocalNodeID)
	}
	if s.cfg.Remote == nil {
		return ids, nil
	}
	nodes, err := s.store.ListNodes(ctx)
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	for _, n := range nodes {
		if n.ID != LocalNodeID {
			ids = append(ids, n.ID)
		}
	}
	return ids, nil
}
