package engine

import (
	"fmt"
	"sort"
	"time"

	"gpubroker/internal/model"
)

// Plan lists every pool that could run w, as Schedule would see it were w
// the only pending workload: feasible candidates first, ranked the way
// Schedule chooses (so Rank 1 is where Schedule would place it), then the
// infeasible ones, each with every reason it was rejected. Pools whose GPU
// model matches none of w's options are left out.
func Plan(snap *Snapshot, pol model.Policy, w *model.Workload, now time.Time) []Candidate {
	if invalid(w) != "" {
		return nil
	}
	r := newRound(snap, pol, now)
	var ts *teamState
	unknownTeam := false
	if r.quotas {
		ts = r.teams[w.Team]
		unknownTeam = ts == nil
	} else {
		ts = r.team(w.Team)
	}
	var cands []Candidate
	var seqs []int
	for i := range w.Options {
		o := &w.Options[i]
		n, g := w.NumNodes, o.GPUsPerNode
		need := n * g
		ctx := r.checkCtx(w, i)
		ctx.explain = true
		prof := profileOf(w, i)
		var qok = true
		var qdetail string
		if !unknownTeam {
			_, qok, qdetail = r.checkQuota(ts, o.GPU, need)
		}
		for _, pl := range r.byGPU[o.GPU] {
			cost := costFor(pl.cost, prof, pl.cluster.Region, r.egressRate(prof.dataRegion, pl))
			cd := Candidate{
				Pool: pl.ref, Provider: pl.cluster.Provider, Region: pl.cluster.Region,
				InstanceType: pl.spec.InstanceType, Option: i, GPU: o.GPU, GPUsPerNode: g,
				NumNodes: n, PriceClass: pl.spec.PriceClass,
				ListPerHour:      cost.ListPerGPUHour * float64(need),
				EffectivePerHour: cost.EffectivePerGPUHour * float64(need),
				Cost:             cost,
			}
			for _, ck := range staticCheckers {
				if reason, detail := ck.check(ctx, pl); reason != "" {
					cd.Rejections = append(cd.Rejections, Rejection{reason, detail})
				}
			}
			if reason, detail := checkGangSize(ctx, pl); reason != "" {
				cd.Rejections = append(cd.Rejections, Rejection{reason, detail})
			}
			if unknownTeam {
				cd.Rejections = append(cd.Rejections, Rejection{ReasonUnknownTeam, fmt.Sprintf("team %q is not in the fleet", w.Team)})
			} else if !qok {
				cd.Rejections = append(cd.Rejections, Rejection{ReasonQuota, qdetail})
			}
			if !pl.cnt.fits(n, g) && !pl.down && n <= len(pl.free)+pl.grow && g <= pl.gpn {
				cd.Rejections = append(cd.Rejections, Rejection{ReasonNoCapacity, fmt.Sprintf("%d node(s) with %d free GPUs; needs %d", pl.cnt[g], g, n)})
			}
			cd.Rejections = append(cd.Rejections, r.allBlocked(placement{w: w, ts: ts, need: need, prov: pl.cluster.Provider, cost: cost})...)
			cd.Feasible = len(cd.Rejections) == 0
			cands = append(cands, cd)
			seqs = append(seqs, pl.seq)
		}
	}
	anyFeasible := false
	for i := range cands {
		anyFeasible = anyFeasible || cands[i].Feasible
	}
	if !anyFeasible && pol.CapFallback {
		for i := range cands {
			c := &cands[i]
			if len(c.Rejections) == 1 && c.Rejections[0].Reason == ReasonProviderCap {
				c.Feasible, c.OverCap = true, true
			}
		}
	}
	idx := make([]int, len(cands))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		x, y := &cands[idx[a]], &cands[idx[b]]
		if x.Feasible != y.Feasible {
			return x.Feasible
		}
		if w.Order == model.Ordered && x.Option != y.Option {
			return x.Option < y.Option
		}
		if x.Cost.EffectivePerGPUHour != y.Cost.EffectivePerGPUHour {
			return x.Cost.EffectivePerGPUHour < y.Cost.EffectivePerGPUHour
		}
		if x.Option != y.Option {
			return x.Option < y.Option
		}
		return seqs[idx[a]] < seqs[idx[b]]
	})
	out := make([]Candidate, len(cands))
	for i, j := range idx {
		out[i] = cands[j]
		out[i].Rank = i + 1
	}
	return out
}
