package controlplane

import (
	"cmp"
	"context"
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strings"

	"lelantos.dev/lelantos/internal/store"
)

// candidate is a node a new sandbox may start on, with what is left of it.
type candidate struct {
	id string
	// freeMemory is the node's sandbox memory limit less what its live
	// sandboxes commit, as the store records them (the node's limit from its
	// last report); huge when the node reported no limit.
	freeMemory int64
}

// unlimited stands for the free memory of a node that reported no limit.
const unlimited = int64(1) << 62

// placement returns the nodes a new sandbox needing memoryMB may start on,
// best first: PlacementChoices of the ready ones sampled at random, ordered
// by free memory (the power of a few choices keeps replicas that place at
// once from all piling onto the one emptiest node), then the others at
// random, to retry on when a node refuses. Draining nodes, and remote nodes
// silent for longer than NodeLostAfter, take no new sandboxes; the Service's
// own node takes them from before its first heartbeat.
func (s *Service) placement(ctx context.Context, memoryMB int) ([]string, error) {
	if s.cfg.Remote == nil {
		// One node: the Service's own.
		if err := s.admitOnNode(ctx, LocalNodeID); err != nil {
			return nil, err
		}
		return []string{LocalNodeID}, nil
	}
	nodes, err := s.store.ListNodes(ctx)
	if err != nil {
		return nil, internal("list nodes", err)
	}
	loads, err := s.store.NodeLoads(ctx)
	if err != nil {
		return nil, internal("read node loads", err)
	}
	var (
		ready    []candidate
		draining []string
		seenOwn  bool
	)
	for _, n := range nodes {
		if n.ID == LocalNodeID {
			seenOwn = true
			if s.node == nil {
				continue
			}
		} else if s.cfg.Remote == nil {
			continue
		}
		switch {
		case n.Status == NodeDraining:
			draining = append(draining, n.ID)
		case n.Silence <= s.cfg.NodeLostAfter || n.ID == LocalNodeID:
			// The Service's own node runs in its process: its silence
			// says nothing of whether it can be reached.
			ready = append(ready, candidate{id: n.ID, freeMemory: freeMemory(n, loads[n.ID])})
		}
	}
	if s.node != nil && !seenOwn {
		ready = append(ready, candidate{id: LocalNodeID, freeMemory: unlimited})
	}
	if len(ready) == 0 {
		if len(draining) > 0 {
			return nil, newError(ErrUnavailable, "node %s is draining: it takes no new sandboxes", strings.Join(draining, ", "))
		}
		return nil, newError(ErrUnavailable, "no node is ready to take a sandbox")
	}
	rand.Shuffle(len(ready), func(i, j int) { ready[i], ready[j] = ready[j], ready[i] })
	k := min(s.cfg.PlacementChoices, len(ready))
	need := int64(memoryMB) << 20
	slices.SortStableFunc(ready[:k], func(a, b candidate) int {
		// A node without room for the sandbox goes last among the sampled.
		if fa, fb := a.freeMemory >= need, b.freeMemory >= need; fa != fb {
			if fa {
				return -1
			}
			return 1
		}
		return cmp.Compare(b.freeMemory, a.freeMemory)
	})
	out := make([]string, len(ready))
	for i, c := range ready {
		out[i] = c.id
	}
	return out, nil
}

// freeMemory is what node n's sandboxes may still commit of its memory.
func freeMemory(n *store.Node, l store.NodeLoad) int64 {
	var r NodeReport
	if json.Unmarshal(n.Report, &r) != nil || r.LimitMemoryBytes <= 0 {
		return unlimited
	}
	return r.LimitMemoryBytes - l.MemoryMB<<20
}
