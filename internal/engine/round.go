package engine

import (
	"sort"
	"time"

	"gpubroker/internal/model"
)

// runAlloc is a running allocation as the round tracks it.
type runAlloc struct {
	a       Allocation
	evicted bool
}

func (r *runAlloc) lost(now time.Time) float64 {
	since := r.a.Started
	if r.a.LastCheckpoint.After(since) {
		since = r.a.LastCheckpoint
	}
	h := now.Sub(since).Hours()
	if h < 0 {
		h = 0
	}
	return h * float64(r.a.GPUs())
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

	provUsage  map[model.Provider]float64
	totalUsage float64
	shareFloor float64

	quotas bool
	teams  map[string]*teamState

	classes map[classKey]*class
	dec     Decisions
	scale   map[*pool]int
}

func newRound(snap *Snapshot, pol model.Policy, now time.Time) *round {
	r := &round{
		snap: snap, fleet: snap.Fleet, pol: pol, now: now,
		byRef:     map[PoolRef]*pool{},
		byGPU:     map[model.GPUModel][]*pool{},
		egress:    map[string]float64{},
		provUsage: map[model.Provider]float64{},
		teams:     map[string]*teamState{},
		classes:   map[classKey]*class{},
		scale:     map[*pool]int{},
	}
	states := make(map[PoolRef]*PoolState, len(snap.Pools))
	for i := range snap.Pools {
		states[snap.Pools[i].Ref] = &snap.Pools[i]
	}
	capacity := 0.0
	f := snap.Fleet
	for ci := range f.Clusters {
		cl := &f.Clusters[ci]
		if _, ok := r.egress[cl.Region]; !ok {
			r.egress[cl.Region] = f.Provider(cl.Provider).EgressPerGB
		}
		for pi := range cl.Pools {
			p := &cl.Pools[pi]
			ref := PoolRef{Cluster: cl.Name, Pool: p.Name}
			pl := newPool(len(r.pools), cl, p, states[ref])
			pl.cost = computePoolCost(f, cl, p, snap.ContractSpentUSD, now)
			r.pools = append(r.pools, pl)
			r.byRef[ref] = pl
			r.byGPU[p.GPU] = append(r.byGPU[p.GPU], pl)
			capacity += float64(p.GPUsPerNode * max(p.Nodes, p.MaxNodes))
		}
	}
	for p, u := range snap.ProviderGPUHours {
		r.provUsage[p] = u
	}
	for _, p := range sortedKeys(r.provUsage) {
		r.totalUsage += r.provUsage[p]
	}
	r.shareFloor = pol.ShareFloorGPUHours
	if r.shareFloor <= 0 {
		r.shareFloor = capacity * 24
	}

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
		ra := &runAlloc{a: snap.Running[i]}
		if pl := r.byRef[ra.a.Pool]; pl != nil {
			pl.running = append(pl.running, ra)
		}
		ts := r.team(ra.a.Team)
		ts.usage[ra.a.GPU] += ra.a.GPUs()
		ts.total += ra.a.GPUs()
	}
	return r
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

// classKey groups workload options that see the same candidate pools in the
// same cost order.
type classKey struct {
	opt  model.Resources
	team string
	prof profile
}

// class is the ranked list of statically feasible pools for one classKey,
// with one capacity index per provider.
type class struct {
	pools   []*pool
	costs   []Cost
	provs   []*provIndex
	rejects map[Reason]int
	first   map[Reason]string
	order   []Reason // reasons in the order first seen, for stable messages
}

type provIndex struct {
	prov  model.Provider
	t     *segTree
	costs []Cost // per leaf
}

func (r *round) class(w *model.Workload, opt int, ts *teamState) *class {
	key := classKey{opt: w.Options[opt], prof: profileOf(w, opt)}
	if ts != nil && ts.team != nil && len(ts.team.Regions) > 0 {
		key.team = ts.team.Name
	}
	if c := r.classes[key]; c != nil {
		return c
	}
	c := &class{rejects: map[Reason]int{}, first: map[Reason]string{}}
	ctx := r.checkCtx(w, opt)
	type cand struct {
		pl   *pool
		cost Cost
	}
	var cands []cand
	for _, pl := range r.byGPU[key.opt.GPU] {
		if reason, detail := firstRejection(ctx, pl); reason != "" {
			if c.rejects[reason] == 0 {
				c.first[reason] = detail
				c.order = append(c.order, reason)
			}
			c.rejects[reason]++
			continue
		}
		cands = append(cands, cand{pl, costFor(pl.cost, key.prof, pl.cluster.Region, r.egressRate(key.prof.dataRegion, pl))})
	}
	sort.SliceStable(cands, func(i, j int) bool {
		a, b := cands[i], cands[j]
		if a.cost.EffectivePerGPUHour != b.cost.EffectivePerGPUHour {
			return a.cost.EffectivePerGPUHour < b.cost.EffectivePerGPUHour
		}
		return a.pl.seq < b.pl.seq
	})
	byProv := map[model.Provider]*provIndex{}
	var members = map[model.Provider][]*pool{}
	for _, cd := range cands {
		c.pools = append(c.pools, cd.pl)
		c.costs = append(c.costs, cd.cost)
		pi := byProv[cd.pl.cluster.Provider]
		if pi == nil {
			pi = &provIndex{prov: cd.pl.cluster.Provider}
			byProv[pi.prov] = pi
			c.provs = append(c.provs, pi)
		}
		members[pi.prov] = append(members[pi.prov], cd.pl)
		pi.costs = append(pi.costs, cd.cost)
	}
	for _, pi := range c.provs {
		pi.t = newSegTree(members[pi.prov])
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

// hours is the expected run time used for budget and share estimates.
func hours(w *model.Workload) float64 {
	if w.Duration > 0 {
		return w.Duration.Hours()
	}
	return DefaultDuration.Hours()
}
