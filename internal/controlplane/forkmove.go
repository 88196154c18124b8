package controlplane

import (
	"context"
	"slices"
	"sync"
	"time"

	"connectrpc.com/connect"

	agentv1 "lelantos.dev/lelantos/internal/gen/agent/v1"
	"lelantos.dev/lelantos/internal/store"
)

// forkRoutes are the nodes each fork of one request may start on, best
// first, when some of them cannot start on their source's node.
type forkRoutes [][]string

// first is the node fork i tries first.
func (r forkRoutes) first(i int) string { return r[i][0] }

// forkRoutes decides where count forks of src start. nil means all of them
// on src's node, from one checkpoint in place (ForkSandbox), as when the
// cluster has one node. When src's node is draining, or the store's
// sandboxes leave it room for fewer than count (its free memory over src's),
// and the source runs on a remote node whose images the control plane can
// copy, the forks that do not fit start on other nodes: the first ones that
// fit try src's node first, the others the best of placement, each with the
// rest to move on to. With nowhere else to go, a draining node's refusal is
// the error.
func (s *Service) forkRoutes(ctx context.Context, src *store.Sandbox, count int) (forkRoutes, error) {
	own := s.admitOnNode(ctx, src.NodeID)
	if src.NodeID == LocalNodeID || s.cfg.Remote == nil || s.cfg.Images == nil {
		return nil, own
	}
	room, err := s.roomOn(ctx, src.NodeID, src.MemoryMB)
	if err != nil {
		return nil, err
	}
	if own == nil && room >= count {
		return nil, nil
	}
	others, err := s.placement(ctx, src.MemoryMB)
	others = slices.DeleteFunc(others, func(id string) bool { return id == src.NodeID })
	if err != nil || len(others) == 0 {
		return nil, own
	}
	routes := make(forkRoutes, count)
	for i := range routes {
		switch {
		case own != nil:
			routes[i] = rotate(others, i)
		case i < room:
			routes[i] = append([]string{src.NodeID}, rotate(others, i)...)
		default:
			routes[i] = append(rotate(others, i), src.NodeID)
		}
	}
	return routes, nil
}

// rotate returns ids starting at its i-th (modulo its length), so that the
// forks of one request spread over the nodes placement ranked.
func rotate(ids []string, i int) []string {
	k := i % len(ids)
	return append(slices.Clone(ids[k:]), ids[:k]...)
}

// roomOn is how many more sandboxes of memoryMB fit on node id, by its
// limit from its last report less what the store's live sandboxes there
// commit.
func (s *Service) roomOn(ctx context.Context, id string, memoryMB int) (int, error) {
	n, err := s.store.GetNode(ctx, id)
	if err != nil {
		return 0, internal("read node "+id, err)
	}
	loads, err := s.store.NodeLoads(ctx)
	if err != nil {
		return 0, internal("read node loads", err)
	}
	free := freeMemory(n, loads[id])
	if memoryMB <= 0 || free >= unlimited/2 {
		return MaxForks, nil
	}
	return int(max(free, 0) / (int64(memoryMB) << 20)), nil
}

// forkAcross makes admitted, the records of forks at[j] of results, each on
// the first node of its route that takes it, from one snapshot of src taken
// in place on its node: there from the snapshot itself, elsewhere from the
// control plane's copy of it. The snapshot and the copy are removed once
// every fork has started. The error is about the source (the snapshot
// failed), and then no fork was made.
func (s *Service) forkAcross(ctx context.Context, src *store.Sandbox, admitted []*store.Sandbox, at []int, routes forkRoutes, results []ForkResult, timeout time.Duration) error {
	dropAll := func() {
		for _, f := range admitted {
			s.dropFork(ctx, f)
		}
	}
	tpl, err := s.store.GetTemplate(ctx, src.TemplateID)
	if err != nil {
		dropAll()
		return internal("read template "+src.TemplateID+" of sandbox "+src.ID, err)
	}
	details, err := s.templateDetails(ctx, tpl)
	if err != nil {
		dropAll()
		return err
	}
	node, err := s.nodeOf(ctx, src.NodeID)
	if err != nil {
		dropAll()
		return err
	}
	snap := &store.Snapshot{ID: newSandboxID(), NodeID: src.NodeID, BaseTemplateID: src.TemplateID}
	nctx, cancel := s.nodeCtx(ctx)
	_, err = node.SnapshotSandbox(nctx, connect.NewRequest(&agentv1.SnapshotSandboxRequest{SandboxId: src.ID, SnapshotId: snap.ID}))
	cancel()
	if err != nil {
		dropAll()
		if connect.CodeOf(err) == connect.CodeNotFound {
			s.markDead(ctx, src, "lost by node during fork: "+connectMessage(err))
			return notFound(src.ID)
		}
		s.afterInPlaceFailure(ctx, src, "fork", err)
		return nodeError("fork sandbox", src.ID, err)
	}
	defer s.dropNodeSnapshot(context.WithoutCancel(ctx), src.NodeID, snap.ID)
	snap.KeptImage = s.keepSnapshot(ctx, src.NodeID, snap.ID)
	if snap.KeptImage != "" {
		defer func() {
			if err := s.cfg.Images.DropImage(context.WithoutCancel(ctx), snap.KeptImage); err != nil {
				s.log.Warn("drop the copy of a fork's image", "image", snap.KeptImage, "err", err)
			}
		}()
	}

	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		moved int
		made  int
		sem   = make(chan struct{}, forkParallel)
	)
	for j, f := range admitted {
		nodes := routes[at[j]]
		if snap.KeptImage == "" {
			// Without the copy only the snapshot's own node can start it.
			nodes = slices.DeleteFunc(slices.Clone(nodes), func(id string) bool { return id != src.NodeID })
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			r := s.startFork(ctx, f, nodes, snap, tpl, details, timeout)
			mu.Lock()
			defer mu.Unlock()
			results[at[j]] = r
			if r.Err == nil {
				made++
				if f.NodeID != src.NodeID {
					moved++
				}
			}
		})
	}
	wg.Wait()
	s.event(ctx, src.ID, "sandbox checkpointed in place and forked into %d sandbox(es), %d of them on other nodes", made, moved)
	return nil
}

// forkParallel bounds how many forks of one request start at once on other
// nodes, as the engine bounds the restores of one fork.
const forkParallel = 4

// startFork starts fork f from snap on the first of nodes that takes it.
func (s *Service) startFork(ctx context.Context, f *store.Sandbox, nodes []string, snap *store.Snapshot,
	tpl *store.Template, details TemplateDetails, timeout time.Duration) ForkResult {
	if len(nodes) == 0 {
		s.dropFork(ctx, f)
		return ForkResult{Err: newError(ErrUnavailable, "fork sandbox %s: node %s has no room for it and no copy of its image could be made for another node", f.ID, snap.NodeID)}
	}
	if f.NodeID != nodes[0] {
		f.NodeID = nodes[0]
		if err := s.save(ctx, f); err != nil {
			s.dropFork(ctx, f)
			return ForkResult{Err: err}
		}
	}
	sp := spec(f, tpl, details)
	sp.SnapshotId, sp.SnapshotImage, sp.StartCmd = snap.ID, "", ""
	resp, err := s.startOn(ctx, f, nodes, s.snapshotSpecs(ctx, snap, sp))
	if err != nil {
		s.bestEffortKill(ctx, f.NodeID, f.ID)
		s.dropFork(ctx, f)
		return ForkResult{Err: nodeError("fork sandbox", f.ID, err)}
	}
	if err := s.forkRunning(ctx, f, resp.Msg.GetStatus().GetAddress(), timeout); err != nil {
		return ForkResult{Err: err}
	}
	return ForkResult{Sandbox: f}
}
