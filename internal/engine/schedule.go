package engine

import (
	"cmp"
	"container/heap"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"gpubroker/internal/model"
)

// Schedule runs one scheduling round. It is pure: the snapshot and pending
// list are only read, and the same arguments always give the same
// Decisions.
//
// The caller applies the decisions in this order: preemptions first (their
// capacity is what some admissions use), then scale requests, then
// admissions. Each admission names the exact nodes it takes.
func Schedule(snap *Snapshot, pending []*model.Workload, pol model.Policy, now time.Time) Decisions {
	return NewScheduler(snap, pol, now).Schedule(pending, now)
}

// Scheduler keeps a round's state from one round to the next, for a caller
// that owns the whole fleet's state and reports every change to it: the
// simulator, which runs hundreds of thousands of rounds. A workload passed
// to several rounds must keep its options, team, node count and data
// region (its class is remembered by pointer); its Duration may change. It is as pure as
// Schedule (no clock, no I/O, no goroutines; not safe for concurrent use),
// and Schedule is exactly one round of a fresh Scheduler.
//
// What the Scheduler decides it also applies to itself: admitted work holds
// its nodes until Release, preempted work is gone (do not Release it). What
// it cannot see, the caller tells it: Release when work ends, SetPoolDown
// for outages, SetUsage for the provider-share, budget and commitment
// figures, and Reprice when time has moved far enough for contract terms
// and burn plans to matter (e.g. daily).
type Scheduler struct {
	r *round
}

// NewScheduler starts from a snapshot; the snapshot's node slices are
// copied before any change, never written.
func NewScheduler(snap *Snapshot, pol model.Policy, now time.Time) *Scheduler {
	return &Scheduler{r: newRound(snap, pol, now)}
}

// Schedule runs one round at now over the pending workloads.
func (s *Scheduler) Schedule(pending []*model.Workload, now time.Time) Decisions {
	r := s.r
	r.now = now
	r.roundNo++
	// One allocation up front: growing by doubling copied more than the
	// round's whole other work.
	r.dec = Decisions{Admit: make([]Admission, 0, len(pending))}
	if len(r.byWorkload) > 4*len(pending)+1024 {
		clear(r.byWorkload) // forget workloads long gone
	}
	clear(r.scale)
	clear(r.noVictims)
	// Waits come out in pending order: mark them by index, then collect.
	if cap(r.waitBuf) < len(pending) {
		r.waitBuf, r.waitingBuf = make([]Wait, len(pending)), make([]bool, len(pending))
	}
	waits, waiting := r.waitBuf[:len(pending)], r.waitingBuf[:len(pending)]
	clear(waiting)
	n := 0
	r.forEachInOrder(pending, func(i int, w *model.Workload) {
		if wt, ok := r.scheduleOne(w); !ok {
			waits[i], waiting[i] = wt, true
			n++
		}
	})
	r.dec.Wait = make([]Wait, 0, n)
	for i, yes := range waiting {
		if yes {
			r.dec.Wait = append(r.dec.Wait, waits[i])
		}
	}
	for _, pl := range r.pools {
		if n := r.scale[pl]; n > 0 {
			r.dec.Scale = append(r.dec.Scale, ScaleRequest{Pool: pl.ref, Nodes: n})
		}
	}
	return r.dec
}

// Release ends a running allocation (the workload finished, failed or was
// cancelled) and returns its GPUs. It reports false for a workload the
// Scheduler does not hold, which changes nothing.
func (s *Scheduler) Release(workload string) bool {
	ra := s.r.alloc(workload)
	if ra == nil {
		return false
	}
	s.r.dropRunning(ra, true)
	return true
}

// SetPoolDown marks a pool as down (no new work) or up again. Work already
// running there is the caller's to Release or keep.
func (s *Scheduler) SetPoolDown(ref PoolRef, down bool) {
	if pl := s.r.byRef[ref]; pl != nil && pl.down != down {
		pl.down = down
		s.r.dropClasses()
	}
}

// SetUsage replaces the provider GPU-hours over the share window (as in
// Snapshot.ProviderGPUHours) and each team's spend this month. Contract
// spend is taken by Reprice.
func (s *Scheduler) SetUsage(providerGPUHours map[model.Provider]float64, teamSpendUSD map[string]float64) {
	r := s.r
	clear(r.provUsage)
	r.totalUsage = 0
	for _, p := range sortedKeys(providerGPUHours) {
		r.provUsage[p] = providerGPUHours[p]
		r.totalUsage += providerGPUHours[p]
	}
	for _, name := range sortedKeys(r.teams) {
		r.teams[name].spend = teamSpendUSD[name]
	}
}

// Reprice recomputes every pool's cost at now with the contracts' spend so
// far (contract terms starting or ending, burn plans moving on).
func (s *Scheduler) Reprice(now time.Time, contractSpentUSD map[string]float64) {
	r := s.r
	changed := false
	for _, pl := range r.pools {
		c := computePoolCost(r.fleet, pl.cluster, pl.spec, contractSpentUSD, now)
		if c != pl.cost {
			pl.cost = c
			changed = true
		}
	}
	if changed {
		r.dropClasses()
	}
}

// dropClasses forgets every candidate list, to be rebuilt on demand after a
// change to what the static checks or the cost order see.
func (r *round) dropClasses() {
	clear(r.classes)
	clear(r.byWorkload)
	for _, pl := range r.pools {
		pl.regs = pl.regs[:0]
	}
}

// forEachInOrder visits pending work by priority (highest first); within a
// priority, by weighted fair share between teams (the team with the fewest
// GPUs in use per unit of weight goes next) or, with fair share off, by
// arrival. Within a team, by arrival then ID.
func (r *round) forEachInOrder(pending []*model.Workload, visit func(int, *model.Workload)) {
	type key struct {
		pri int
		at  int64
		id  string
		i   int
	}
	keys := make([]key, len(pending))
	for i, w := range pending {
		keys[i] = key{w.Priority, w.Submitted.UnixNano(), w.ID, i}
	}
	slices.SortFunc(keys, func(a, b key) int {
		if a.pri != b.pri {
			return cmp.Compare(b.pri, a.pri)
		}
		if a.at != b.at {
			return cmp.Compare(a.at, b.at)
		}
		if c := strings.Compare(a.id, b.id); c != 0 {
			return c
		}
		return cmp.Compare(a.i, b.i)
	})
	level := make([]int, 0, len(keys))
	for lo := 0; lo < len(keys); {
		hi := lo
		level = level[:0]
		for hi < len(keys) && keys[hi].pri == keys[lo].pri {
			level = append(level, keys[hi].i)
			hi++
		}
		if !r.pol.FairShare {
			for _, i := range level {
				visit(i, pending[i])
			}
		} else {
			r.fairShare(pending, level, visit)
		}
		lo = hi
	}
}

func (r *round) fairShare(pending []*model.Workload, level []int, visit func(int, *model.Workload)) {
	queues := map[string]*teamQueue{}
	var h teamHeap
	for _, i := range level {
		name := pending[i].Team
		q := queues[name]
		if q == nil {
			ts := r.teams[name]
			if ts == nil {
				// Unknown to the fleet: it will wait, but still takes its
				// turn in the fair-share order.
				ts = &teamState{weight: 1}
			}
			q = &teamQueue{name: name, ts: ts}
			queues[name] = q
			h = append(h, q)
		}
		q.items = append(q.items, i)
	}
	heap.Init(&h)
	for h.Len() > 0 {
		q := h[0]
		i := q.items[q.next]
		q.next++
		visit(i, pending[i])
		if q.next == len(q.items) {
			heap.Pop(&h)
		} else {
			heap.Fix(&h, 0)
		}
	}
}

type teamQueue struct {
	name  string
	ts    *teamState
	items []int
	next  int
}

type teamHeap []*teamQueue

func (h teamHeap) Len() int { return len(h) }
func (h teamHeap) Less(i, j int) bool {
	a := float64(h[i].ts.total) / h[i].ts.weight
	b := float64(h[j].ts.total) / h[j].ts.weight
	if a != b {
		return a < b
	}
	return h[i].name < h[j].name
}
func (h teamHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *teamHeap) Push(x any)   { *h = append(*h, x.(*teamQueue)) }
func (h *teamHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// attempt is the outcome of trying one resource option.
type attempt struct {
	opt      int
	pl       *pool
	cost     Cost
	borrowed bool
	overCap  bool
	fail     Reason
	detail   string
	dynamic  bool // the failure depends on the fleet's current state
	// overCapAlt is where the option would run if the provider share cap
	// were lifted; used only when no option fits within the cap.
	overCapAlt *attempt
	// class is the option's candidate list, once looked up.
	class *class
}

func (a *attempt) better(b *attempt) bool {
	if a.cost.EffectivePerGPUHour != b.cost.EffectivePerGPUHour {
		return a.cost.EffectivePerGPUHour < b.cost.EffectivePerGPUHour
	}
	if a.opt != b.opt {
		return a.opt < b.opt
	}
	return a.pl.seq < b.pl.seq
}

// invalid reports workload shapes the engine cannot reason about at all.
func invalid(w *model.Workload) string {
	if w.NumNodes < 1 {
		return fmt.Sprintf("num_nodes is %d; a workload needs at least one node", w.NumNodes)
	}
	if len(w.Options) == 0 {
		return "no resource option; ask for a GPU, e.g. accelerators: H100:8"
	}
	for _, o := range w.Options {
		if o.GPUsPerNode < 1 || o.GPUsPerNode > maxG {
			return fmt.Sprintf("%d GPUs per node is out of range 1..%d", o.GPUsPerNode, maxG)
		}
	}
	return ""
}

func (r *round) scheduleOne(w *model.Workload) (Wait, bool) {
	if msg := invalid(w); msg != "" {
		return Wait{Workload: w.ID, Reason: ReasonInvalid, Detail: msg}, false
	}
	var ts *teamState
	if r.quotas {
		ts = r.teams[w.Team]
		if ts == nil {
			return Wait{Workload: w.ID, Reason: ReasonUnknownTeam, Detail: fmt.Sprintf("team %q is not in the fleet; add it under teams: or submit as a listed team", w.Team)}, false
		}
	} else {
		ts = r.team(w.Team)
	}
	var best *attempt
	var found attempt // the best placed option, kept off the heap
	var failBuf [4]attempt
	fails := failBuf[:0]
	for i := range w.Options {
		at := r.tryOption(w, i, ts)
		if at.pl == nil {
			fails = append(fails, at)
			continue
		}
		if best == nil || at.better(best) {
			found = at
			best = &found
		}
		if w.Order == model.Ordered {
			break
		}
	}
	if best == nil && r.pol.CapFallback {
		// Nothing fits within the cap: the policy lets the cheapest
		// over-cap placement through rather than leave the work waiting.
		for i := range fails {
			alt := fails[i].overCapAlt
			if alt != nil && (best == nil || alt.better(best)) {
				best = alt
				if w.Order == model.Ordered {
					break
				}
			}
		}
	}
	if best == nil && r.pol.Preemption {
		best = r.tryPreempt(w, ts, fails)
	}
	if best != nil {
		r.admit(w, ts, best)
		return Wait{}, true
	}
	return waitFor(w, fails), false
}

// waitFor picks the most useful reason among the options' failures: the
// first that depends on the fleet's state (capacity, quota, budget, cap),
// else the first option's static reason.
func waitFor(w *model.Workload, fails []attempt) Wait {
	pick := &fails[0]
	for i := range fails {
		if fails[i].dynamic {
			pick = &fails[i]
			break
		}
	}
	detail := pick.detail
	if len(w.Options) > 1 {
		o := &w.Options[pick.opt]
		detail = string(o.GPU) + ":" + strconv.Itoa(o.GPUsPerNode) + ": " + detail
	}
	return Wait{Workload: w.ID, Reason: pick.fail, Detail: detail}
}

// checkQuota applies the team's quota for a GPU model and cohort borrowing.
func (r *round) checkQuota(ts *teamState, gpu model.GPUModel, need int) (borrowed bool, ok bool, detail string) {
	if !r.quotas {
		return false, true, ""
	}
	q := ts.team.Quota[gpu]
	used := ts.usage[gpu]
	if used+need <= q {
		return false, true, ""
	}
	if len(ts.cohort) > 0 {
		sumQ, sumU := 0, 0
		for _, m := range ts.cohort {
			sumQ += m.team.Quota[gpu]
			sumU += m.usage[gpu]
		}
		if sumU+need <= sumQ {
			return true, true, ""
		}
		return false, false, fmt.Sprintf("team %s uses %d of its %d %s quota and cohort %s has %d idle; needs %d", ts.team.Name, used, q, gpu, ts.team.Cohort, max(0, sumQ-sumU), need)
	}
	return false, false, fmt.Sprintf("team %s uses %d of its %d %s quota; needs %d more (no cohort to borrow from)", ts.team.Name, used, q, gpu, need)
}

func (r *round) tryOption(w *model.Workload, i int, ts *teamState) attempt {
	o := &w.Options[i]
	n, g := w.NumNodes, o.GPUsPerNode
	need := n * g
	at := attempt{opt: i}
	borrowed, ok, detail := r.checkQuota(ts, o.GPU, need)
	if !ok {
		at.fail, at.detail, at.dynamic = ReasonQuota, detail, true
		return at
	}
	at.borrowed = borrowed
	c := r.class(w, i, ts)
	at.class = c
	if len(c.pools) == 0 {
		at.fail, at.detail = c.mainRejection(o.GPU)
		return at
	}
	pr := profileOf(w, i)
	var posBuf [32]int
	var effBuf [32]float64
	pos, eff := posBuf[:0], effBuf[:0]
	if len(c.subs) > len(posBuf) {
		pos, eff = make([]int, 0, len(c.subs)), make([]float64, 0, len(c.subs))
	}
	pos, eff = pos[:len(c.subs)], eff[:len(c.subs)]
	for k, s := range c.subs {
		pos[k] = s.t.first(0, n, g)
		if pos[k] >= 0 {
			eff[k] = s.effective(pos[k], &pr)
		}
	}
	// A pool over the team's budget is skipped; the first pool within
	// budget whose provider is over the share cap rules that provider out
	// and is remembered as the over-cap alternative.
	var capAt *attempt
	var capDetail, budgetDetail string
	for {
		best := -1
		for k, s := range c.subs {
			if pos[k] < 0 {
				continue
			}
			if best < 0 || eff[k] < eff[best] || (eff[k] == eff[best] && s.t.pools[pos[k]].seq < c.subs[best].t.pools[pos[best]].seq) {
				best = k
			}
		}
		if best < 0 {
			break
		}
		s := c.subs[best]
		pl := s.t.pools[pos[best]]
		cost := costFor(pl.cost, pr, pl.cluster.Region, s.egress)
		switch reason, d := r.blocked(placement{w: w, ts: ts, need: need, prov: s.prov, cost: cost}); reason {
		case ReasonBudget:
			// Over budget here; a cheaper pool of the class may not be.
			if budgetDetail == "" {
				budgetDetail = d
			}
			if pos[best] = s.t.first(pos[best]+1, n, g); pos[best] >= 0 {
				eff[best] = s.effective(pos[best], &pr)
			}
			continue
		case ReasonProviderCap:
			// The provider is over the cap: none of its pools will do.
			if capAt == nil {
				capAt = &attempt{opt: i, pl: pl, cost: cost, borrowed: borrowed, overCap: true}
				capDetail = d
			}
			for k := range c.subs {
				if c.subs[k].prov == s.prov {
					pos[k] = -1
				}
			}
			continue
		}
		at.pl, at.cost = pl, cost
		return at
	}
	at.dynamic = true
	switch {
	case capAt != nil:
		at.overCapAlt = capAt
		at.fail, at.detail = ReasonProviderCap, capDetail
	case budgetDetail != "":
		at.fail, at.detail = ReasonBudget, budgetDetail
	default:
		at.fail = ReasonNoCapacity
		at.detail = c.noCapacityDetail(n, g, o.GPU)
		largest := 0
		for _, pl := range c.pools {
			largest = max(largest, len(pl.free)+pl.grow)
		}
		if n > largest {
			at.fail, at.dynamic = ReasonNeverFits, false
			at.detail = fmt.Sprintf("gang of %d nodes; the largest candidate pool has %d", n, largest)
		}
	}
	return at
}

// noCapacityDetail says a gang found no room; memoised per shape, since a
// full fleet makes thousands of workloads of a class say the same.
func (c *class) noCapacityDetail(n, g int, gpu model.GPUModel) string {
	k := shape{n, g}
	if d, ok := c.noCap[k]; ok {
		return d
	}
	if c.noCap == nil {
		c.noCap = map[shape]string{}
	}
	d := fmt.Sprintf("no pool has %d free node(s) with %d free %s each (%d candidate pool(s))", n, g, gpu, len(c.pools))
	c.noCap[k] = d
	return d
}

// mainRejection is the reason a class has no candidate pool: the most
// common static rejection, ties broken by checker order.
func (c *class) mainRejection(gpu model.GPUModel) (Reason, string) {
	if c.mainReason != "" {
		return c.mainReason, c.mainDetail
	}
	if len(c.order) == 0 {
		c.mainReason, c.mainDetail = ReasonGPUModel, fmt.Sprintf("no pool in the fleet has %s GPUs", gpu)
		return c.mainReason, c.mainDetail
	}
	best := c.order[0]
	for _, reason := range c.order[1:] {
		if c.rejects[reason] > c.rejects[best] {
			best = reason
		}
	}
	c.mainReason, c.mainDetail = best, fmt.Sprintf("%s (%d pool(s))", c.first[best], c.rejects[best])
	return c.mainReason, c.mainDetail
}

func (r *round) admit(w *model.Workload, ts *teamState, at *attempt) {
	o := &w.Options[at.opt]
	n, g := w.NumNodes, o.GPUsPerNode
	need := n * g
	nodes, added := at.pl.take(n, g)
	if added > 0 {
		r.scale[at.pl] += added
	}
	ts.spend += at.cost.BilledPerGPUHour * float64(need) * hours(w)
	add := r.shareAdd(w, need)
	r.future[at.pl.cluster.Provider] += add
	r.totalFuture += add
	r.addRunning(&runAlloc{round: r.roundNo, a: Allocation{
		Workload: w.ID, Team: w.Team, Priority: w.Priority, Pool: at.pl.ref, Nodes: nodes,
		GPUsPerNode: g, GPU: o.GPU, Borrowed: at.borrowed, Started: r.now,
		CheckpointInterval: w.CheckpointInterval, ExpectedEnd: r.now.Add(expected(w)),
	}})
	r.dec.Admit = append(r.dec.Admit, Admission{
		Workload:    w.ID,
		Option:      at.opt,
		Pool:        at.pl.ref,
		Provider:    at.pl.cluster.Provider,
		Region:      at.pl.cluster.Region,
		GPU:         o.GPU,
		GPUsPerNode: g,
		Nodes:       nodes,
		PriceClass:  at.pl.spec.PriceClass,
		Contract:    at.pl.cost.contract,
		Borrowed:    at.borrowed,
		OverCap:     at.overCap,
		Cost:        at.cost,
	})
}
