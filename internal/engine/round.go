package engine

import (
	"slices"
	"sort"
	"strings"
	"time"

	"gpubroker/internal/model"
)

// runAlloc is a running allocation as the round tracks it.
type runAlloc struct {
	a       Allocation
	evicted bool
	// round is the round that admitted it (0 for the snapshot's): work
	// admitted in this round is never preempted in the same round.
	round int
	// lostGPUh is the work evicting it now would lose: GPU-hours since its
	// last checkpoint (or start). Refreshed when its pool is sorted.
	lostGPUh float64
}

func (ra *runAlloc) refreshLost(now time.Time) {
	a := &ra.a
	since := a.Started
	switch {
	case a.LastCheckpoint.After(since):
		since = a.LastCheckpoint
	case a.CheckpointInterval > 0 && now.After(a.Started):
		since = a.Started.Add(now.Sub(a.Started) / a.CheckpointInterval * a.CheckpointInterval)
	}
	ra.lostGPUh = max(0, now.Sub(since).Hours()) * float64(a.GPUs())
}

type teamState struct {
	team   *model.Team
	weight float64
	usage  map[model.GPUModel]int
	total  int
	spend  float64
	cohort []*teamState
}

// round is the working state of one Schedule or Plan call. Everything in it
// is derived from the snapshot; nothing outlives the call.
type round struct {
	snap  *Snapshot
	fleet *model.Fleet
	pol   model.Policy
	now   time.Time

	pools  []*pool
	byRef  map[PoolRef]*pool
	byGPU  map[model.GPUModel][]*pool
	egress map[string]float64 // region -> egress USD/GB of the provider there

	// provUsage is GPU-hours used in the share window so far; future is
	// what running work and this round's admissions are still expected to
	// use within the window. The cap judges their sum.
	provUsage   map[model.Provider]float64
	totalUsage  float64
	future      map[model.Provider]float64
	totalFuture float64
	projected   bool
	projectedAt time.Time
	// busy lists the pools holding running work (projectRunning's input).
	busy       []*pool
	shareFloor float64

	quotas bool
	teams  map[string]*teamState

	classes map[classKey]*class
	// byWorkload caches each pending workload option's class; see class.
	byWorkload map[workloadOption]*class
	dec        Decisions
	roundNo    int
	// allocs indexes running work by workload for Release; built on the
	// first Release, so a one-shot Schedule never pays for it.
	allocs map[string]*runAlloc

	// What running work there is to preempt, and which searches for
	// victims already failed this round.
	running    int
	priorities map[int]int // running allocations per priority
	// minPriority is the lowest key of priorities unless minPriorityStale.
	minPriority      int
	minPriorityStale bool
	borrowed         int
	noVictims        map[preemptMemo]shape
	// scratch space for the victim search
	scratchVictims []*runAlloc
	scratchNodes   []nodeGPUs
	// scratch space for a round's waits, indexed like pending
	waitBuf    []Wait
	waitingBuf []bool
	scale      map[*pool]int
}

func newRound(snap *Snapshot, pol model.Policy, now time.Time) *round {
	r := &round{
		snap: snap, fleet: snap.Fleet, pol: pol, now: now,
		byRef:      map[PoolRef]*pool{},
		byGPU:      map[model.GPUModel][]*pool{},
		egress:     map[string]float64{},
		provUsage:  map[model.Provider]float64{},
		future:     map[model.Provider]float64{},
		teams:      map[string]*teamState{},
		classes:    map[classKey]*class{},
		byWorkload: map[workloadOption]*class{},
		scale:      map[*pool]int{},
		noVictims:  map[preemptMemo]shape{},
		priorities: map[int]int{},
	}
	states := make(map[PoolRef]*PoolState, len(snap.Pools))
	for i := range snap.Pools {
		states[snap.Pools[i].Ref] = &snap.Pools[i]
	}
	f := snap.Fleet
	for ci := range f.Clusters {
		cl := &f.Clusters[ci]
		if _, ok := r.egress[cl.Region]; !ok {
			r.egress[cl.Region] = f.Provider(cl.Provider).EgressPerGB
		}
		for pi := range cl.Pools {
			p := &cl.Pools[pi]
			if p.GPUsPerNode < 1 || p.GPUsPerNode > maxG {
				// model.Pool.Validate rejects such a pool; a caller that
				// skipped validation gets it ignored, not a panic.
				continue
			}
			ref := PoolRef{Cluster: cl.Name, Pool: p.Name}
			pl := newPool(len(r.pools), cl, p, states[ref])
			pl.cost = computePoolCost(f, cl, p, snap.ContractSpentUSD, now)
			r.pools = append(r.pools, pl)
			r.byRef[ref] = pl
			r.byGPU[p.GPU] = append(r.byGPU[p.GPU], pl)
		}
	}
	for p, u := range snap.ProviderGPUHours {
		r.provUsage[p] = u
	}
	for _, p := range sortedKeys(r.provUsage) {
		r.totalUsage += r.provUsage[p]
	}
	r.shareFloor = pol.ShareFloor(f)

	r.quotas = len(f.Teams) > 0
	cohorts := map[string][]*teamState{}
	for i := range f.Teams {
		t := &f.Teams[i]
		ts := &teamState{team: t, weight: t.Weight, usage: map[model.GPUModel]int{}, spend: snap.TeamSpendUSD[t.Name]}
		if ts.weight <= 0 {
			ts.weight = 1
		}
		r.teams[t.Name] = ts
		if t.Cohort != "" {
			cohorts[t.Cohort] = append(cohorts[t.Cohort], ts)
		}
	}
	for _, members := range cohorts {
		for _, ts := range members {
			ts.cohort = members
		}
	}
	for i := range snap.Running {
		r.addRunning(&runAlloc{a: snap.Running[i]})
	}
	return r
}

// remaining is the GPU-hours an allocation is still expected to use within
// the share window from now.
func (r *round) remaining(ra *runAlloc) float64 {
	end := ra.a.ExpectedEnd
	if end.IsZero() {
		end = ra.a.Started.Add(DefaultDuration)
	}
	return max(0, r.pol.WindowHours(end.Sub(r.now).Hours())) * float64(ra.a.GPUs())
}

// project makes future current for this round: computed on first use
// (only a policy with a share cap needs it), at most once per round.
func (r *round) project() {
	if !r.projected || !r.projectedAt.Equal(r.now) {
		r.projectRunning()
	}
}

// projectRunning recomputes the expected future usage of running work.
func (r *round) projectRunning() {
	r.projected, r.projectedAt = true, r.now
	clear(r.future)
	r.totalFuture = 0
	busy := r.busy[:0]
	for _, pl := range r.busy {
		if len(pl.running)+len(pl.fresh) == 0 {
			pl.busy = false
			continue
		}
		busy = append(busy, pl)
		for _, list := range [][]*runAlloc{pl.running, pl.fresh} {
			for _, ra := range list {
				if !ra.evicted {
					r.future[pl.cluster.Provider] += r.remaining(ra)
				}
			}
		}
	}
	// Pool order, so the sums (and the decisions they feed) are the same
	// however the pools became busy.
	slices.SortFunc(busy, func(a, b *pool) int { return a.seq - b.seq })
	r.busy = busy
	for _, p := range sortedKeys(r.future) {
		r.totalFuture += r.future[p]
	}
}

// addRunning records capacity held by an allocation (its nodes are already
// counted as used in the pool).
func (r *round) addRunning(ra *runAlloc) {
	if pl := r.byRef[ra.a.Pool]; pl != nil {
		if !pl.busy {
			pl.busy = true
			r.busy = append(r.busy, pl)
		}
		if ra.round > 0 {
			// Admitted this round: not a victim before the next round,
			// so it joins the sorted victim list only then.
			pl.fresh = append(pl.fresh, ra)
		} else {
			pl.running = append(pl.running, ra)
			pl.runSorted = false
		}
	}
	if r.allocs != nil {
		r.allocs[ra.a.Workload] = ra
	}
	if r.running == 0 || ra.a.Priority < r.minPriority {
		r.minPriority = ra.a.Priority
	}
	r.running++
	r.priorities[ra.a.Priority]++
	if ra.a.Borrowed {
		r.borrowed++
	}
	ts := r.team(ra.a.Team)
	ts.usage[ra.a.GPU] += ra.a.GPUs()
	ts.total += ra.a.GPUs()
}

// alloc finds a running allocation by workload.
func (r *round) alloc(workload string) *runAlloc {
	if r.allocs == nil {
		r.allocs = map[string]*runAlloc{}
		for _, pl := range r.pools {
			for _, list := range [][]*runAlloc{pl.running, pl.fresh} {
				for _, ra := range list {
					r.allocs[ra.a.Workload] = ra
				}
			}
		}
	}
	return r.allocs[workload]
}

// dropRunning forgets an allocation and, unless its capacity was already
// handed back, returns its GPUs to the pool.
func (r *round) dropRunning(ra *runAlloc, freeNodes bool) {
	pl := r.byRef[ra.a.Pool]
	if pl != nil {
		rem := r.remaining(ra)
		r.future[pl.cluster.Provider] -= rem
		r.totalFuture -= rem
		if freeNodes {
			pl.release(ra.a.Nodes, ra.a.GPUsPerNode)
		}
		if i := slices.Index(pl.running, ra); i >= 0 {
			pl.running = slices.Delete(pl.running, i, i+1)
		} else if i := slices.Index(pl.fresh, ra); i >= 0 {
			pl.fresh = slices.Delete(pl.fresh, i, i+1)
		}
	}
	if r.allocs != nil && r.allocs[ra.a.Workload] == ra {
		delete(r.allocs, ra.a.Workload)
	}
	r.running--
	if r.priorities[ra.a.Priority]--; r.priorities[ra.a.Priority] == 0 {
		delete(r.priorities, ra.a.Priority)
		if ra.a.Priority == r.minPriority {
			r.minPriorityStale = true
		}
	}
	if ra.a.Borrowed {
		r.borrowed--
	}
	ts := r.team(ra.a.Team)
	ts.usage[ra.a.GPU] -= ra.a.GPUs()
	ts.total -= ra.a.GPUs()
}

// team returns the state of a team, creating a quota-less one for a team
// the fleet does not list (only reachable when quotas are off).
func (r *round) team(name string) *teamState {
	ts := r.teams[name]
	if ts == nil {
		ts = &teamState{team: &model.Team{Name: name}, weight: 1, usage: map[model.GPUModel]int{}, spend: r.snap.TeamSpendUSD[name]}
		r.teams[name] = ts
	}
	return ts
}

func sortedKeys[K ~string, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	return keys
}

// classKey groups workload options that pass the same static checks on the
// same pools. What varies between workloads of a class (gang size, run
// time, checkpoint interval, data volume) only adds a constant to every pool
// of one sub-index, so the order inside a sub-index holds for all of them.
type classKey struct {
	opt        model.Resources
	team       string // set only when the team restricts regions
	nodes      int    // set only when max_hourly_cost depends on it
	dataRegion string
	avoid      string // the workload's AvoidRegions, joined
}

// class is the statically feasible pools of one classKey, split into
// sub-indexes, each ranked by its pools' base effective cost (without the
// workload's spot risk and egress) with a segment tree over free capacity.
type class struct {
	pools   []*pool // every member, in base cost order
	subs    []*subIndex
	rejects map[Reason]int
	first   map[Reason]string
	order   []Reason // reasons in the order first seen, for stable messages
	noCap   map[shape]string
	// mainReason and mainDetail memoise mainRejection.
	mainReason Reason
	mainDetail string
}

// subIndex holds the pools of one class that share provider, spot-ness and
// whether they sit in the data's region: inside it, a workload's spot risk
// is the same multiple of billed price and its egress the same constant for
// every pool, so its base cost order is the workload's order too.
type subIndex struct {
	prov   model.Provider
	spot   bool
	inData bool
	t      *segTree
	base   []poolCost // per leaf
	egress float64    // USD/GB of leaving the data region, for this provider
}

// effective returns the cost of leaf i for a workload profile.
func (s *subIndex) effective(i int, pr *profile) float64 {
	pc := &s.base[i]
	eff := pc.billed - pc.shadow
	if s.spot {
		eff += pr.redo(pc.spotRate) * pc.billed
	}
	if !s.inData {
		eff += pr.egress("", s.egress)
	}
	return eff
}

func (r *round) class(w *model.Workload, opt int, ts *teamState) *class {
	// A Scheduler sees the same pending workloads round after round:
	// finding their class by pointer skips hashing the whole option.
	// (A one-shot Schedule, round 1, would only pay for filling it.)
	if r.roundNo <= 1 {
		return r.classFor(w, opt, ts)
	}
	wk := workloadOption{w, opt}
	if c := r.byWorkload[wk]; c != nil {
		return c
	}
	c := r.classFor(w, opt, ts)
	r.byWorkload[wk] = c
	return c
}

// workloadOption names one resource option of one pending workload.
type workloadOption struct {
	w   *model.Workload
	opt int
}

func (r *round) classFor(w *model.Workload, opt int, ts *teamState) *class {
	key := classKey{opt: w.Options[opt]}
	if ts != nil && ts.team != nil && len(ts.team.Regions) > 0 {
		key.team = ts.team.Name
	}
	if key.opt.MaxHourlyCost > 0 {
		key.nodes = w.NumNodes
	}
	if w.DataRegion != "" && w.DataGB > 0 {
		key.dataRegion = w.DataRegion
	}
	if len(w.AvoidRegions) > 0 {
		key.avoid = strings.Join(w.AvoidRegions, "\x00")
	}
	if c := r.classes[key]; c != nil {
		return c
	}
	c := &class{rejects: map[Reason]int{}, first: map[Reason]string{}}
	ctx := r.checkCtx(w, opt)
	for _, pl := range r.byGPU[key.opt.GPU] {
		if reason, _ := firstRejection(ctx, pl); reason != "" {
			if c.rejects[reason] == 0 {
				ctx.explain = true
				_, c.first[reason] = firstRejection(ctx, pl)
				ctx.explain = false
				c.order = append(c.order, reason)
			}
			c.rejects[reason]++
			continue
		}
		c.pools = append(c.pools, pl)
	}
	sort.SliceStable(c.pools, func(i, j int) bool {
		a, b := c.pools[i], c.pools[j]
		ca, cb := a.cost.billed-a.cost.shadow, b.cost.billed-b.cost.shadow
		if ca != cb {
			return ca < cb
		}
		return a.seq < b.seq
	})
	type subKey struct {
		prov         model.Provider
		spot, inData bool
	}
	subs := map[subKey]*subIndex{}
	members := map[*subIndex][]*pool{}
	for _, pl := range c.pools {
		k := subKey{pl.cluster.Provider, pl.spec.PriceClass == model.Spot, key.dataRegion == "" || pl.cluster.Region == key.dataRegion}
		s := subs[k]
		if s == nil {
			s = &subIndex{prov: k.prov, spot: k.spot, inData: k.inData, egress: r.egressRate(key.dataRegion, pl)}
			subs[k] = s
			c.subs = append(c.subs, s)
		}
		members[s] = append(members[s], pl)
		s.base = append(s.base, pl.cost)
	}
	for _, s := range c.subs {
		s.t = newSegTree(members[s])
	}
	r.classes[key] = c
	return c
}

func (r *round) checkCtx(w *model.Workload, opt int) *checkCtx {
	ctx := &checkCtx{w: w, opt: &w.Options[opt], pol: &r.pol}
	if ts := r.teams[w.Team]; ts != nil && ts.team != nil {
		ctx.team = ts.team
	}
	return ctx
}

func firstRejection(ctx *checkCtx, pl *pool) (Reason, string) {
	for _, ck := range staticCheckers {
		if reason, detail := ck.check(ctx, pl); reason != "" {
			return reason, detail
		}
	}
	return "", ""
}

// egressRate is the USD/GB price of moving data out of region: the rate of
// the provider whose cluster is there, else that of the pool's provider.
func (r *round) egressRate(region string, pl *pool) float64 {
	if rate, ok := r.egress[region]; ok {
		return rate
	}
	return r.fleet.Provider(pl.cluster.Provider).EgressPerGB
}

// expected is the run time used for budget and share estimates.
func expected(w *model.Workload) time.Duration {
	if w.Duration > 0 {
		return w.Duration
	}
	return DefaultDuration
}

func hours(w *model.Workload) float64 { return expected(w).Hours() }
