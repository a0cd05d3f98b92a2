package engine

import (
	"slices"
	"sort"
	"strconv"

	"gpubroker/internal/model"
)

// preemptible reports whether running allocation v may be evicted for w.
// Lower-priority work always may; work running on capacity borrowed from
// the cohort may be reclaimed by a team that is within its own quota, unless
// it outranks the claimant.
func preemptible(v *runAlloc, w *model.Workload, borrowing bool, round int) bool {
	if v.evicted || v.round == round || v.a.Ahead {
		return false
	}
	if v.a.Priority < w.Priority {
		return true
	}
	return v.a.Borrowed && !borrowing && v.a.Team != w.Team && v.a.Priority <= w.Priority
}

// mayPreempt is a quick test that some running work could be evicted for
// w at all, so that a full queue does not search every pool for every job.
func (r *round) mayPreempt(w *model.Workload) bool {
	if r.running == 0 {
		return false
	}
	if r.borrowed > 0 {
		return true
	}
	return r.lowestPriority() < w.Priority
}

// lowestPriority is the smallest priority of running work, recomputed
// only after the work at the lowest priority may have ended.
func (r *round) lowestPriority() int {
	if r.minPriorityStale {
		first := true
		for p := range r.priorities {
			if first || p < r.minPriority {
				r.minPriority, first = p, false
			}
		}
		r.minPriorityStale = false
	}
	return r.minPriority
}

type preemptMemo struct {
	c         *class
	priority  int
	borrowing bool
}

type shape struct{ n, g int }

type nodeGPUs struct{ node, gpus int }

type victimPlan struct {
	at      attempt
	victims []*runAlloc
	lost    float64
}

// tryPreempt looks, for the options that failed for lack of capacity, for
// the pool where evicting running work makes room while losing the least
// work (GPU-hours since the victims' last checkpoints). With ordered
// options, an earlier option that can preempt wins over a later one.
func (r *round) tryPreempt(w *model.Workload, ts *teamState, fails []attempt) *attempt {
	if !r.mayPreempt(w) {
		return nil
	}
	var best *victimPlan
	var bestVictims []*runAlloc
	for _, f := range fails {
		if f.fail != ReasonNoCapacity {
			continue
		}
		o := &w.Options[f.opt]
		n, g := w.NumNodes, o.GPUsPerNode
		need := n * g
		borrowed, ok, _ := r.checkQuota(ts, o.GPU, need)
		if !ok {
			continue
		}
		c := f.class
		memo := preemptMemo{c: c, priority: w.Priority, borrowing: borrowed}
		if prev, ok := r.noVictims[memo]; ok && prev.n <= n && prev.g <= g {
			continue // a smaller gang found no victims in this class already
		}
		pr := profileOf(w, f.opt)
		found := 0
		for _, pl := range c.pools {
			if found == maxPreemptPools {
				break
			}
			vp := r.victimsIn(pl, w, n, g, borrowed)
			if vp == nil {
				continue
			}
			found++
			cost := costFor(pl.cost, pr, pl.cluster.Region, r.egressRate(pr.dataRegion, pl))
			if reason, _ := r.blocked(placement{w: w, ts: ts, need: need, prov: pl.cluster.Provider, cost: cost}); reason != "" {
				continue
			}
			vp.at = attempt{opt: f.opt, pl: pl, cost: cost, borrowed: borrowed}
			if best == nil || vp.lost < best.lost || (vp.lost == best.lost && vp.at.better(&best.at)) {
				vp.victims = append(bestVictims[:0], vp.victims...)
				bestVictims = vp.victims
				best = vp
			}
		}
		if best == nil || best.at.opt != f.opt {
			r.noVictims[memo] = shape{n, g}
		}
		if best != nil && w.Order == model.Ordered {
			break
		}
	}
	if best == nil {
		return nil
	}
	pl := best.at.pl
	for _, v := range best.victims {
		v.evicted = true
		r.dropRunning(v, true)
		var why string
		if v.a.Priority < w.Priority {
			why = "priority " + strconv.Itoa(v.a.Priority) + " < " + strconv.Itoa(w.Priority)
		} else {
			why = "reclaiming quota " + w.Team + " lent to team " + v.a.Team
		}
		r.dec.Preempt = append(r.dec.Preempt, Preemption{
			Workload: v.a.Workload, Pool: pl.ref, For: w.ID, Reason: why, LostGPUHours: v.lostGPUh,
		})
	}
	return &best.at
}

// maxPreemptPools bounds the search for victims to the cheapest pools
// where preemption can make room, so a full queue of high-priority work
// does not scan the whole fleet per job. Among those, the least lost work
// wins.
const maxPreemptPools = 4

// victimsIn picks the cheapest set of victims in one pool: the eligible
// allocations by increasing lost work, added until the gang fits, then
// pruned of any no longer needed.
func (r *round) victimsIn(pl *pool, w *model.Workload, n, g int, borrowing bool) *victimPlan {
	if pl.sortedRound != r.roundNo {
		for _, v := range pl.fresh {
			if v.round < r.roundNo {
				pl.running = append(pl.running, v)
				pl.runSorted = false
			}
		}
		pl.fresh = slices.DeleteFunc(pl.fresh, func(v *runAlloc) bool { return v.round < r.roundNo })
	}
	if len(pl.running) == 0 {
		return nil
	}
	if !pl.runSorted || pl.sortedRound != r.roundNo {
		// Once per pool per round: cheapest victims first.
		for _, v := range pl.running {
			v.refreshLost(r.now)
		}
		sort.SliceStable(pl.running, func(i, j int) bool {
			a, b := pl.running[i], pl.running[j]
			if a.lostGPUh != b.lostGPUh {
				return a.lostGPUh < b.lostGPUh
			}
			if a.a.Priority != b.a.Priority {
				return a.a.Priority < b.a.Priority
			}
			return a.a.Workload < b.a.Workload
		})
		pl.runSorted, pl.sortedRound = true, r.roundNo
		pl.runBorrowed = false
		pl.runMinPriority = pl.running[0].a.Priority
		for _, v := range pl.running {
			pl.runMinPriority = min(pl.runMinPriority, v.a.Priority)
			pl.runBorrowed = pl.runBorrowed || v.a.Borrowed
		}
	}
	// Nothing here can be evicted for w (evictions only shrink the set).
	if pl.runMinPriority >= w.Priority && (!pl.runBorrowed || borrowing) {
		return nil
	}
	have := int(pl.cnt[g])
	// Scratch space reused across searches; a plan that wins is copied.
	chosen := r.scratchVictims[:0]
	extra := r.scratchNodes[:0] // GPUs freed per node by the chosen victims
	defer func() { r.scratchVictims, r.scratchNodes = chosen[:0], extra[:0] }()
	for _, v := range pl.running {
		if have >= n {
			break
		}
		if !preemptible(v, w, borrowing, r.roundNo) {
			continue
		}
		chosen = append(chosen, v)
		for _, i := range v.a.Nodes {
			if i >= len(pl.free) {
				continue
			}
			k := slices.IndexFunc(extra, func(e nodeGPUs) bool { return e.node == i })
			if k < 0 {
				k = len(extra)
				extra = append(extra, nodeGPUs{node: i})
			}
			before := min(pl.free[i]+extra[k].gpus, pl.gpn)
			extra[k].gpus += v.a.GPUsPerNode
			if before < g && min(pl.free[i]+extra[k].gpus, pl.gpn) >= g {
				have++
			}
		}
	}
	if have < n {
		return nil
	}
	// Drop victims that turned out unnecessary, most expensive first.
	if len(chosen) > 1 && len(chosen) <= 8 {
		for i := len(chosen) - 1; i >= 0; i-- {
			trial := append(append([]*runAlloc(nil), chosen[:i]...), chosen[i+1:]...)
			if pl.fitsAfterRelease(n, g, trial) {
				chosen = trial
			}
		}
	}
	vp := &victimPlan{victims: chosen}
	for _, v := range chosen {
		vp.lost += v.lostGPUh
	}
	return vp
}
