package controlplane

import (
	"context"
	"errors"
	"fmt"

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

// remoteAddress is the agent address remote node id last reported.
func (s *Service) remoteAddress(ctx context.Context, id string) (string, error) {
	if s.cfg.Remote == nil {
		return "", newError(ErrUnavailable, "node %s: this control plane reaches no other nodes", id)
	}
	n, err := s.store.GetNode(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return "", newError(ErrUnavailable, "node %s has never reported", id)
	case err != nil:
		return "", internal("read node "+id, err)
	case n.Address == "":
		return "", newError(ErrUnavailable, "node %s reported no agent address", id)
	}
	return n.Address, nil
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
