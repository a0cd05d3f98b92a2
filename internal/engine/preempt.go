package engine

import (
	"fmt"
	"sort"

	"gpubroker/internal/model"
)

// preemptible reports whether running allocation v may be evicted for w.
// Lower-priority work always may; work running on capacity borrowed from
// the cohort may be reclaimed by a team that is within its own quota, unless
// it outranks the claimant.
func preemptible(v *runAlloc, w *model.Workload, borrowing bool) bool {
	if v.evicted {
		return false
	}
	if v.a.Priority < w.Priority {
		return true
	}
	return v.a.Borrowed && !borrowing && v.a.Team != w.Team && v.a.Priority <= w.Priority
}

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
	var best *victimPlan
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
		c := r.class(w, f.opt, ts)
		for pi, pl := range c.pools {
			vp := r.victimsIn(pl, w, n, g, borrowed)
			if vp == nil {
				continue
			}
			if blocked, _ := r.capBlocked(pl.cluster.Provider, w, need); blocked {
				continue
			}
			if blocked, _ := r.budgetBlocked(ts, w, need, c.costs[pi]); blocked {
				continue
			}
			vp.at = attempt{opt: f.opt, pl: pl, cost: c.costs[pi], borrowed: borrowed}
			if best == nil || vp.lost < best.lost || (vp.lost == best.lost && vp.at.better(&best.at)) {
				best = vp
			}
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
		pl.release(v.a.Nodes, v.a.GPUsPerNode)
		vt := r.team(v.a.Team)
		vt.usage[v.a.GPU] -= v.a.GPUs()
		vt.total -= v.a.GPUs()
		why := fmt.Sprintf("priority %d < %d", v.a.Priority, w.Priority)
		if v.a.Priority >= w.Priority {
			why = fmt.Sprintf("reclaiming quota %s lent to team %s", w.Team, v.a.Team)
		}
		r.dec.Preempt = append(r.dec.Preempt, Preemption{
			Workload: v.a.Workload, Pool: pl.ref, For: w.ID, Reason: why, LostGPUHours: v.lost(r.now),
		})
	}
	return &best.at
}

// victimsIn picks the cheapest set of victims in one pool: the eligible
// allocations by increasing lost work, added until the gang fits, then
// pruned of any no longer needed.
func (r *round) victimsIn(pl *pool, w *model.Workload, n, g int, borrowing bool) *victimPlan {
	var elig []*runAlloc
	for _, v := range pl.running {
		if preemptible(v, w, borrowing) {
			elig = append(elig, v)
		}
	}
	if len(elig) == 0 {
		return nil
	}
	sort.SliceStable(elig, func(i, j int) bool {
		li, lj := elig[i].lost(r.now), elig[j].lost(r.now)
		if li != lj {
			return li < lj
		}
		if elig[i].a.Priority != elig[j].a.Priority {
			return elig[i].a.Priority < elig[j].a.Priority
		}
		return elig[i].a.Workload < elig[j].a.Workload
	})
	var chosen []*runAlloc
	fits := false
	for _, v := range elig {
		chosen = append(chosen, v)
		if pl.fitsAfterRelease(n, g, chosen) {
			fits = true
			break
		}
	}
	if !fits {
		return nil
	}
	// Drop victims that turned out unnecessary, most expensive first.
	for i := len(chosen) - 1; i >= 0; i-- {
		trial := append(append([]*runAlloc(nil), chosen[:i]...), chosen[i+1:]...)
		if pl.fitsAfterRelease(n, g, trial) {
			chosen = trial
		}
	}
	vp := &victimPlan{victims: chosen}
	for _, v := range chosen {
		vp.lost += v.lost(r.now)
	}
	return vp
}
