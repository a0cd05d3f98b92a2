package control

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"gpubroker/internal/backend"
	"gpubroker/internal/engine"
	"gpubroker/internal/model"
	"gpubroker/internal/server/view"
)

// The provisioning controller: it acts on the engine's scale requests
// (engine.Decisions.Scale) for the elastic pools (model.Pool.MaxNodes
// above Nodes) of clusters whose backend is a backend.Scaler.
//
// Level-triggered, like the rest of the reconciler: every round it works
// out how many nodes each such pool needs now (the fleet's Nodes, every
// node an attempt holds, and the nodes the engine's admissions of this
// round add) and asks the backend for that many with Scale, which answers
// how many are ready. A pool shrinks only once it has needed fewer nodes
// for scaleDownAfter, so that a queue of short jobs does not make it flap.
//
// The engine counts the nodes an elastic pool may still add as free, and
// admits work onto them at once; on these pools an admission that needs a
// node the backend does not have ready yet is held back for the round (the
// job waits, InsufficientCapacity, saying the pool is scaling) and the
// engine admits it again in a later round, once Scale reports the nodes
// ready. Between rounds the pool is seen at its ready size
// (provisionedFleet), so the work on nodes beyond the fleet's count holds
// them in the engine's snapshot like any other.
//
// Pools of clusters whose backend cannot scale are left as before: what
// the engine admits onto new nodes is dispatched and the engine's own
// queue (Slurm's, Kubernetes') holds it until nodes come.

// scaleDownAfter is how long an elastic pool must need fewer nodes than
// it has before the controller removes the idle ones, unless
// Config.ScaleDownAfter says otherwise.
const scaleDownAfter = 2 * time.Minute

// provisioner is the controller's state between rounds.
type provisioner struct {
	mu sync.Mutex
	// ready is each scaled pool's ready node count, as its backend last
	// answered Scale.
	ready map[engine.PoolRef]int
	// needed is when each scaled pool last needed every node it has.
	needed map[engine.PoolRef]time.Time
}

// provisionedFleet is fs with each scaled pool at the size its backend
// last reported ready (never below the fleet's Nodes nor above MaxNodes),
// or fs itself when no pool differs.
func (s *Controller) provisionedFleet(fs *view.Fleet) *view.Fleet {
	pv := &s.prov
	pv.mu.Lock()
	defer pv.mu.Unlock()
	if fs == nil || len(pv.ready) == 0 {
		return fs
	}
	var out *model.Fleet
	copied := map[int]bool{}
	for ci, c := range fs.Fleet.Clusters {
		for pi, p := range c.Pools {
			n, ok := pv.ready[engine.PoolRef{Cluster: c.Name, Pool: p.Name}]
			if !ok || !elastic(&p) {
				continue
			}
			n = min(max(n, p.Nodes), p.MaxNodes)
			if n == p.Nodes {
				continue
			}
			if out == nil {
				f := *fs.Fleet
				f.Clusters = append([]model.Cluster(nil), f.Clusters...)
				out = &f
			}
			if !copied[ci] {
				out.Clusters[ci].Pools = append([]model.Pool(nil), c.Pools...)
				copied[ci] = true
			}
			out.Clusters[ci].Pools[pi].Nodes = n
		}
	}
	if out == nil {
		return fs
	}
	v := *fs
	v.Fleet = out
	if v.Applied == nil {
		v.Applied = fs.Fleet
	}
	return &v
}

// elastic reports whether a pool may grow beyond its Nodes.
func elastic(p *model.Pool) bool { return p.MaxNodes > p.Nodes }

// provision runs the controller over one round's decisions: it scales the
// elastic pools of clusters whose backend is a Scaler, and holds back the
// admissions in dec that need nodes not ready yet (they join dec.Wait).
func (rd *round) provision(ctx context.Context, dec *engine.Decisions) {
	s := rd.s
	pv := &s.prov
	applied := rd.fs.Fleet
	if rd.fs.Applied != nil {
		applied = rd.fs.Applied
	}
	// What each pool needs: every node held, and the nodes the engine's
	// scale requests add after those the round's snapshot showed.
	need := map[engine.PoolRef]int{}
	for _, j := range rd.holding() {
		ref := engine.PoolRef{Cluster: j.Placement.Cluster, Pool: j.Placement.Pool}
		for _, n := range j.Placement.Nodes {
			need[ref] = max(need[ref], n+1)
		}
	}
	for _, sr := range dec.Scale {
		if c := rd.fs.Fleet.Cluster(sr.Pool.Cluster); c != nil {
			if i := slices.IndexFunc(c.Pools, func(p model.Pool) bool { return p.Name == sr.Pool.Pool }); i >= 0 {
				need[sr.Pool] = max(need[sr.Pool], c.Pools[i].Nodes+sr.Nodes)
			}
		}
	}
	pv.mu.Lock()
	defer pv.mu.Unlock()
	if pv.ready == nil {
		pv.ready, pv.needed = map[engine.PoolRef]int{}, map[engine.PoolRef]time.Time{}
	}
	downAfter := s.cfg.ScaleDownAfter
	if downAfter <= 0 {
		downAfter = scaleDownAfter
	}
	scaled := map[engine.PoolRef]bool{}
	for _, c := range applied.Clusters {
		var sc backend.Scaler
		for _, p := range c.Pools {
			if !elastic(&p) {
				continue
			}
			if sc == nil {
				b, err := s.backendOf(c)
				if err != nil {
					break
				}
				var ok bool
				if sc, ok = b.(backend.Scaler); !ok {
					break
				}
			}
			ref := engine.PoolRef{Cluster: c.Name, Pool: p.Name}
			if rd.obs != nil && !rd.obs[c.Name].open() {
				// Down: it takes no work this round; ask again once up.
				scaled[ref] = true
				continue
			}
			cur, known := pv.ready[ref]
			if !known {
				cur = p.Nodes
			}
			want := min(max(p.Nodes, need[ref]), p.MaxNodes)
			switch {
			case want >= cur:
				pv.needed[ref] = rd.now
			case rd.now.Sub(pv.needed[ref]) < downAfter:
				want = cur // idle nodes stay a while
			}
			// got is read only when the call returned in time (within's
			// answer orders it); a late call writes it unread.
			var got int
			err := s.within(ctx, "scale", func(ctx context.Context) error {
				n, err := sc.Scale(ctx, p.Name, want)
				got = n
				return err
			})
			ready := cur
			if err != nil {
				s.log.Warn("scaling an elastic pool failed", "cluster", c.Name, "pool", p.Name, "nodes", want, "err", err)
			} else if ready = got; ready != cur {
				s.log.Info("elastic pool scaled", "cluster", c.Name, "pool", p.Name, "asked", want, "ready", ready)
			}
			pv.ready[ref] = ready
			scaled[ref] = true
		}
	}
	for ref := range pv.ready {
		if !scaled[ref] {
			delete(pv.ready, ref) // the pool left the fleet or stopped scaling
			delete(pv.needed, ref)
		}
	}
	// Admissions onto nodes that are not ready wait for a later round.
	kept := dec.Admit[:0]
	for _, a := range dec.Admit {
		ready, ok := pv.ready[a.Pool]
		if !ok || len(a.Nodes) == 0 || a.Nodes[len(a.Nodes)-1] < ready {
			kept = append(kept, a)
			continue
		}
		dec.Wait = append(dec.Wait, engine.Wait{Workload: a.Workload, Reason: engine.ReasonNoCapacity,
			Detail: fmt.Sprintf("pool %s/%s is scaling up to %d nodes (%d ready)", a.Pool.Cluster, a.Pool.Pool,
				a.Nodes[len(a.Nodes)-1]+1, ready)})
	}
	dec.Admit = kept
}
