package engine_test

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"

	"gpubroker/internal/engine"
	"gpubroker/internal/model"
)

// Property tests: rapid generates fleets, observed state and queues, runs
// Schedule (and Plan), and checks what must hold whatever the inputs. Run
// longer hunts with
//
//	go test -run Property -rapid.checks=2000 ./internal/engine/
//
// A failure prints the shrunk inputs as rapid's draw log.

var (
	propGPUs      = []model.GPUModel{"H100", "A100", "L4"}
	propProviders = []model.Provider{"aws", "gcp", "azure", "lambda"}
	propRegions   = []string{"us-east-1", "us-west-2", "eu-west-1"}
	propGPN       = []int{1, 2, 4, 8}
	propNoTeams   = []string{"a", "b", "c"}
	propNow       = time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)
	propWindow    = 720 * time.Hour
)

// world is one generated scheduling round.
type world struct {
	snap    *engine.Snapshot
	pending []*model.Workload
	pol     model.Policy
	now     time.Time
}

type genCfg struct {
	minPending, maxPending int
	// hideRunning keeps nodes partly used but lists no running
	// allocations, as if the capacity were held outside the broker.
	hideRunning bool
}

func genWorld(t *rapid.T, cfg genCfg) world {
	f := genFleet(t)
	snap := genSnapshot(t, f, cfg.hideRunning)
	return world{snap: snap, pending: genPending(t, f, cfg.minPending, cfg.maxPending), pol: f.Policy, now: propNow}
}

func genFleet(t *rapid.T) *model.Fleet {
	f := &model.Fleet{}
	provs := propProviders[:rapid.IntRange(1, len(propProviders)).Draw(t, "providers")]
	for _, p := range provs {
		f.Providers = append(f.Providers, model.ProviderInfo{
			Name:                  p,
			EgressPerGB:           rapid.SampledFrom([]float64{0, 0.02, 0.09}).Draw(t, "egress"),
			SpotPreemptionPerHour: rapid.SampledFrom([]float64{0, 0.01, 0.1, 0.5}).Draw(t, "spotRate"),
		})
	}
	if rapid.Bool().Draw(t, "spendContract") {
		start := propNow.AddDate(0, -rapid.IntRange(0, 30).Draw(t, "spendAgeMonths"), -1)
		f.Contracts = append(f.Contracts, model.Contract{
			Name: "spend", Provider: rapid.SampledFrom(provs).Draw(t, "spendProvider"), Kind: model.SpendCommitment,
			Start: start, End: start.AddDate(rapid.IntRange(1, 5).Draw(t, "spendYears"), 0, 0),
			SpendUSD:  rapid.SampledFrom([]float64{1e4, 1e6, 1e8}).Draw(t, "spendUSD"),
			Discount:  rapid.SampledFrom([]float64{0, 0.1, 0.3}).Draw(t, "discount"),
			TakeOrPay: rapid.Bool().Draw(t, "takeOrPay"),
		})
	}
	if rapid.Bool().Draw(t, "capacityContract") {
		f.Contracts = append(f.Contracts, model.Contract{
			Name: "capacity", Provider: rapid.SampledFrom(provs).Draw(t, "capProvider"), Kind: model.CapacityCommitment,
			Start: propNow.AddDate(-1, 0, 0), End: propNow.AddDate(2, 0, 0),
			GPU: rapid.SampledFrom(propGPUs).Draw(t, "capGPU"), GPUs: rapid.IntRange(1, 64).Draw(t, "capGPUs"),
			PricePerGPUHour: 1.5, TakeOrPay: true,
		})
	}
	nclusters := rapid.IntRange(1, 6).Draw(t, "clusters")
	for ci := 0; ci < nclusters; ci++ {
		cl := model.Cluster{
			Name:     fmt.Sprintf("c%d", ci),
			Provider: rapid.SampledFrom(provs).Draw(t, "clusterProvider"),
			Region:   rapid.SampledFrom(propRegions).Draw(t, "region"),
			Backend:  model.BackendCloud,
		}
		npools := rapid.IntRange(1, 3).Draw(t, "pools")
		for pi := 0; pi < npools; pi++ {
			p := model.Pool{
				Name:            fmt.Sprintf("p%d", pi),
				GPU:             rapid.SampledFrom(propGPUs).Draw(t, "poolGPU"),
				GPUsPerNode:     rapid.SampledFrom(propGPN).Draw(t, "gpn"),
				Nodes:           rapid.IntRange(0, 8).Draw(t, "nodes"),
				PriceClass:      rapid.SampledFrom(model.PriceClasses).Draw(t, "priceClass"),
				PricePerGPUHour: rapid.SampledFrom([]float64{0, 0.5, 1, 2, 2.5, 4, 8}).Draw(t, "price"),
			}
			if rapid.IntRange(0, 2).Draw(t, "elastic") == 0 {
				p.MaxNodes = p.Nodes + rapid.IntRange(1, 6).Draw(t, "extraNodes")
			}
			for _, c := range f.Contracts {
				if c.Provider == cl.Provider && rapid.Bool().Draw(t, "poolContract") {
					p.Contract = c.Name
					break
				}
			}
			cl.Pools = append(cl.Pools, p)
		}
		f.Clusters = append(f.Clusters, cl)
	}
	nteams := rapid.IntRange(0, 4).Draw(t, "teams")
	for i := 0; i < nteams; i++ {
		tm := model.Team{
			Name:   fmt.Sprintf("t%d", i),
			Quota:  map[model.GPUModel]int{},
			Weight: rapid.SampledFrom([]float64{0, 0.5, 1, 3}).Draw(t, "weight"),
			Cohort: rapid.SampledFrom([]string{"", "x", "y"}).Draw(t, "cohort"),
		}
		for _, g := range propGPUs {
			// rapid leans toward early choices: put the roomy ones first
			// so that quota does not stop most of the queue.
			if rapid.IntRange(0, 5).Draw(t, "noQuota") < 5 {
				tm.Quota[g] = rapid.SampledFrom([]int{64, 256, 16, 4, 0, 32}).Draw(t, "quota")
			}
		}
		if rapid.IntRange(0, 2).Draw(t, "hasBudget") == 0 {
			tm.MonthlyBudgetUSD = rapid.SampledFrom([]float64{1, 50, 500, 5000}).Draw(t, "budget")
		}
		f.Teams = append(f.Teams, tm)
	}
	pol := model.Policy{
		ShareWindow: propWindow,
		CapFallback: rapid.Bool().Draw(t, "capFallback"),
		SpotAllowed: rapid.Bool().Draw(t, "spotAllowed"),
		FairShare:   rapid.Bool().Draw(t, "fairShare"),
		Preemption:  rapid.Bool().Draw(t, "preemption"),
	}
	if rapid.Bool().Draw(t, "capOn") {
		pol.MaxProviderShare = rapid.Float64Range(0.3, 0.9).Draw(t, "maxShare")
	}
	if rapid.IntRange(0, 2).Draw(t, "floorSet") == 0 {
		pol.ShareFloorGPUHours = rapid.SampledFrom([]float64{10, 1000, 100000}).Draw(t, "floor")
	}
	f.Policy = pol
	return f
}

// genSnapshot takes running allocations out of each pool's nodes first, so
// NodeFree is consistent with them. Running work of a fleet with teams keeps
// every cohort within its summed quota, and is marked borrowed where it takes
// its team over the team's own.
func genSnapshot(t *rapid.T, f *model.Fleet, hideRunning bool) *engine.Snapshot {
	snap := &engine.Snapshot{Fleet: f, ProviderGPUHours: map[model.Provider]float64{}, ContractSpentUSD: map[string]float64{}, TeamSpendUSD: map[string]float64{}}
	usage := map[string]map[model.GPUModel]int{}
	teamNames := propNoTeams
	if len(f.Teams) > 0 {
		teamNames = nil
		for _, tm := range f.Teams {
			teamNames = append(teamNames, tm.Name)
			usage[tm.Name] = map[model.GPUModel]int{}
		}
	}
	seq := 0
	for _, cl := range f.Clusters {
		for _, p := range cl.Pools {
			ref := engine.PoolRef{Cluster: cl.Name, Pool: p.Name}
			up := p.Nodes
			if p.Nodes > 0 && rapid.IntRange(0, 5).Draw(t, "nodesMissing") == 0 {
				up = rapid.IntRange(0, p.Nodes-1).Draw(t, "nodesUp")
			}
			free := make([]int, up)
			for i := range free {
				free[i] = p.GPUsPerNode
			}
			nrun := rapid.IntRange(0, 4).Draw(t, "running")
			for k := 0; k < nrun && up > 0; k++ {
				var shapes []int
				for _, g := range propGPN {
					if g <= p.GPUsPerNode {
						shapes = append(shapes, g)
					}
				}
				g := rapid.SampledFrom(shapes).Draw(t, "runGPN")
				n := rapid.IntRange(1, 3).Draw(t, "runNodes")
				rot := rapid.IntRange(0, up-1).Draw(t, "runRot")
				var nodes []int
				for j := 0; j < up && len(nodes) < n; j++ {
					if i := (j + rot) % up; free[i] >= g {
						nodes = append(nodes, i)
					}
				}
				if len(nodes) < n {
					continue
				}
				team := rapid.SampledFrom(teamNames).Draw(t, "runTeam")
				borrowed := false
				if len(f.Teams) > 0 {
					need := n * g
					tm, _ := f.Team(team)
					inCohort := tm.Cohort == "" || cohortUse(f, usage, tm.Cohort, p.GPU)+need <= cohortQuota(f, tm.Cohort, p.GPU)
					switch {
					case !inCohort:
						continue
					case usage[team][p.GPU]+need <= tm.Quota[p.GPU]:
					case tm.Cohort != "":
						borrowed = true
					default:
						continue
					}
					usage[team][p.GPU] += need
				}
				for _, i := range nodes {
					free[i] -= g
				}
				sort.Ints(nodes)
				start := propNow.Add(-time.Duration(rapid.IntRange(0, 100).Draw(t, "runAgeH")) * time.Hour)
				a := engine.Allocation{
					Workload: fmt.Sprintf("r%d", seq), Team: team, Priority: rapid.IntRange(0, 3).Draw(t, "runPriority"),
					Pool: ref, Nodes: nodes, GPUsPerNode: g, GPU: p.GPU, Borrowed: borrowed, Started: start,
				}
				seq++
				if rapid.Bool().Draw(t, "expectedEnd") {
					a.ExpectedEnd = propNow.Add(time.Duration(rapid.IntRange(-10, 2000).Draw(t, "remainingH")) * time.Hour)
				}
				if rapid.Bool().Draw(t, "checkpointed") {
					a.LastCheckpoint = start.Add(propNow.Sub(start) / 2)
				}
				if !hideRunning {
					snap.Running = append(snap.Running, a)
				}
			}
			down := rapid.IntRange(0, 6).Draw(t, "down") == 0
			if down || up != p.Nodes || rapid.IntRange(0, 3).Draw(t, "listState") > 0 || !sameAll(free, p.GPUsPerNode) {
				snap.Pools = append(snap.Pools, engine.PoolState{Ref: ref, NodeFree: free, Down: down})
			}
		}
	}
	for _, p := range f.Providers {
		if rapid.Bool().Draw(t, "hasHours") {
			snap.ProviderGPUHours[p.Name] = rapid.SampledFrom([]float64{0, 100, 5000, 50000}).Draw(t, "gpuHours")
		}
	}
	for _, c := range f.Contracts {
		snap.ContractSpentUSD[c.Name] = rapid.SampledFrom([]float64{0, 1e3, 1e6}).Draw(t, "spent")
	}
	for _, tm := range f.Teams {
		if tm.MonthlyBudgetUSD > 0 {
			snap.TeamSpendUSD[tm.Name] = rapid.Float64Range(0, tm.MonthlyBudgetUSD).Draw(t, "teamSpend")
		}
	}
	return snap
}

func sameAll(xs []int, v int) bool {
	for _, x := range xs {
		if x != v {
			return false
		}
	}
	return true
}

func genPending(t *rapid.T, f *model.Fleet, lo, hi int) []*model.Workload {
	teamNames := propNoTeams
	if len(f.Teams) > 0 {
		teamNames = nil
		for _, tm := range f.Teams {
			teamNames = append(teamNames, tm.Name)
		}
	}
	n := rapid.IntRange(lo, hi).Draw(t, "pending")
	var out []*model.Workload
	for i := 0; i < n; i++ {
		w := &model.Workload{
			ID:        fmt.Sprintf("w%02d", i),
			Kind:      model.Job,
			Team:      rapid.SampledFrom(teamNames).Draw(t, "team"),
			Priority:  rapid.IntRange(0, 3).Draw(t, "priority"),
			NumNodes:  rapid.IntRange(1, 4).Draw(t, "numNodes"),
			Order:     rapid.SampledFrom([]model.OptionOrder{model.AnyOf, model.Ordered}).Draw(t, "order"),
			Duration:  rapid.SampledFrom([]time.Duration{0, 30 * time.Minute, time.Hour, 8 * time.Hour, 100 * time.Hour, 1000 * time.Hour}).Draw(t, "duration"),
			Submitted: propNow.Add(-time.Duration(rapid.IntRange(0, 20).Draw(t, "ageMin")) * time.Minute),
		}
		nopt := rapid.IntRange(1, 3).Draw(t, "options")
		for j := 0; j < nopt; j++ {
			o := model.Resources{
				GPU:         rapid.SampledFrom(propGPUs).Draw(t, "optGPU"),
				GPUsPerNode: rapid.SampledFrom(propGPN).Draw(t, "optGPN"),
			}
			switch rapid.IntRange(0, 3).Draw(t, "spot") {
			case 0:
				o.UseSpot = true
			case 1:
				o.AllowSpot = true
			}
			w.Options = append(w.Options, o)
		}
		if rapid.IntRange(0, 3).Draw(t, "hasData") == 0 {
			w.DataRegion = rapid.SampledFrom(propRegions).Draw(t, "dataRegion")
			w.DataGB = rapid.SampledFrom([]float64{10, 1000}).Draw(t, "dataGB")
		}
		if rapid.Bool().Draw(t, "hasCheckpoints") {
			w.CheckpointInterval = 30 * time.Minute
		}
		out = append(out, w)
	}
	return out
}

func cohortUse(f *model.Fleet, usage map[string]map[model.GPUModel]int, cohort string, g model.GPUModel) int {
	sum := 0
	for _, tm := range f.Teams {
		if tm.Cohort == cohort {
			sum += usage[tm.Name][g]
		}
	}
	return sum
}

func cohortQuota(f *model.Fleet, cohort string, g model.GPUModel) int {
	sum := 0
	for _, tm := range f.Teams {
		if tm.Cohort == cohort {
			sum += tm.Quota[g]
		}
	}
	return sum
}

// poolInfo is what the checks need to know of one fleet pool.
type poolInfo struct {
	spec     model.Pool
	cluster  model.Cluster
	down     bool
	nodeFree []int // as observed, before the round
}

func pools(snap *engine.Snapshot) map[engine.PoolRef]*poolInfo {
	out := map[engine.PoolRef]*poolInfo{}
	for _, cl := range snap.Fleet.Clusters {
		for _, p := range cl.Pools {
			free := make([]int, p.Nodes)
			for i := range free {
				free[i] = p.GPUsPerNode
			}
			out[engine.PoolRef{Cluster: cl.Name, Pool: p.Name}] = &poolInfo{spec: p, cluster: cl, nodeFree: free}
		}
	}
	for _, st := range snap.Pools {
		pi := out[st.Ref]
		if pi == nil {
			continue
		}
		pi.down = st.Down
		if st.NodeFree != nil {
			pi.nodeFree = append([]int(nil), st.NodeFree...)
		}
	}
	return out
}

func byID(pending []*model.Workload) map[string]*model.Workload {
	out := map[string]*model.Workload{}
	for _, w := range pending {
		out[w.ID] = w
	}
	return out
}

// checkCapacity is property 1: preemptions first (each victim's GPUs back
// on its nodes), then admissions (GPUsPerNode off each named node, new
// nodes of an elastic pool only as far as its scale request): no node goes
// below zero or above its GPU count, and only running work is preempted.
func checkCapacity(t *rapid.T, wd world, d engine.Decisions) {
	info := pools(wd.snap)
	free := map[engine.PoolRef][]int{}
	for ref, pi := range info {
		free[ref] = append([]int(nil), pi.nodeFree...)
	}
	running := map[string]engine.Allocation{}
	for _, a := range wd.snap.Running {
		running[a.Workload] = a
	}
	preempted := map[string]bool{}
	for _, p := range d.Preempt {
		a, ok := running[p.Workload]
		if !ok {
			t.Fatalf("preempts %s, which is not running", p.Workload)
		}
		if preempted[p.Workload] {
			t.Fatalf("preempts %s twice", p.Workload)
		}
		preempted[p.Workload] = true
		if p.Pool != a.Pool {
			t.Fatalf("preemption of %s names pool %s; it runs in %s", p.Workload, p.Pool, a.Pool)
		}
		for _, i := range a.Nodes {
			f := free[a.Pool]
			if i < len(f) {
				f[i] += a.GPUsPerNode
				if f[i] > info[a.Pool].spec.GPUsPerNode {
					t.Fatalf("preempting %s leaves node %d of %s with %d free of %d", p.Workload, i, a.Pool, f[i], info[a.Pool].spec.GPUsPerNode)
				}
			}
		}
	}
	scale := map[engine.PoolRef]int{}
	for _, s := range d.Scale {
		pi := info[s.Pool]
		if pi == nil {
			t.Fatalf("scale request for unknown pool %s", s.Pool)
		}
		if _, dup := scale[s.Pool]; dup {
			t.Fatalf("two scale requests for %s", s.Pool)
		}
		if s.Nodes <= 0 {
			t.Fatalf("scale request for %s asks for %d nodes", s.Pool, s.Nodes)
		}
		if len(pi.nodeFree)+s.Nodes > pi.spec.MaxNodes {
			t.Fatalf("scale request grows %s from %d to %d nodes; max_nodes is %d", s.Pool, len(pi.nodeFree), len(pi.nodeFree)+s.Nodes, pi.spec.MaxNodes)
		}
		scale[s.Pool] = s.Nodes
	}
	for _, a := range d.Admit {
		pi := info[a.Pool]
		if pi == nil {
			t.Fatalf("admits %s to unknown pool %s", a.Workload, a.Pool)
		}
		limit := len(pi.nodeFree) + scale[a.Pool]
		for _, i := range a.Nodes {
			if i < 0 || i >= limit {
				t.Fatalf("admits %s to node %d of %s, which has %d node(s) up and a scale request for %d", a.Workload, i, a.Pool, len(pi.nodeFree), scale[a.Pool])
			}
			f := free[a.Pool]
			for len(f) <= i {
				f = append(f, pi.spec.GPUsPerNode)
			}
			f[i] -= a.GPUsPerNode
			if f[i] < 0 {
				t.Fatalf("admitting %s leaves node %d of %s with %d free GPUs", a.Workload, i, a.Pool, f[i])
			}
			free[a.Pool] = f
		}
	}
	for ref, n := range scale {
		if used := len(free[ref]) - len(info[ref].nodeFree); used != n {
			t.Fatalf("scale request for %s asks for %d nodes; admissions use %d new nodes", ref, n, used)
		}
	}
}

// checkGangs is property 2, plus the static checks an admission must pass.
func checkGangs(t *rapid.T, wd world, d engine.Decisions) {
	info := pools(wd.snap)
	ws := byID(wd.pending)
	for _, a := range d.Admit {
		w := ws[a.Workload]
		if w == nil {
			t.Fatalf("admits %s, which is not pending", a.Workload)
		}
		if a.Option < 0 || a.Option >= len(w.Options) {
			t.Fatalf("admits %s with option %d of %d", w.ID, a.Option, len(w.Options))
		}
		o := w.Options[a.Option]
		pi := info[a.Pool]
		if pi == nil {
			t.Fatalf("admits %s to unknown pool %s", w.ID, a.Pool)
		}
		if len(a.Nodes) != w.NumNodes {
			t.Fatalf("admits %s on %d nodes; it needs %d", w.ID, len(a.Nodes), w.NumNodes)
		}
		seen := map[int]bool{}
		for _, i := range a.Nodes {
			if seen[i] {
				t.Fatalf("admits %s twice on node %d of %s: %v", w.ID, i, a.Pool, a.Nodes)
			}
			seen[i] = true
		}
		if a.GPUsPerNode != o.GPUsPerNode || a.GPU != o.GPU {
			t.Fatalf("admits %s as %s:%d; option %d asks for %s:%d", w.ID, a.GPU, a.GPUsPerNode, a.Option, o.GPU, o.GPUsPerNode)
		}
		if pi.spec.GPU != o.GPU {
			t.Fatalf("admits %s (%s) to %s, a pool of %s", w.ID, o.GPU, a.Pool, pi.spec.GPU)
		}
		if pi.down {
			t.Fatalf("admits %s to %s, which is down", w.ID, a.Pool)
		}
		if a.Provider != pi.cluster.Provider || a.PriceClass != pi.spec.PriceClass {
			t.Fatalf("admission of %s says %s/%s; pool %s is %s/%s", w.ID, a.Provider, a.PriceClass, a.Pool, pi.cluster.Provider, pi.spec.PriceClass)
		}
		spot := pi.spec.PriceClass == model.Spot
		if spot && (!wd.pol.SpotAllowed || (!o.UseSpot && !o.AllowSpot)) || !spot && o.UseSpot {
			t.Fatalf("admits %s (use_spot %v, allow_spot %v, policy %v) to %s pool %s", w.ID, o.UseSpot, o.AllowSpot, wd.pol.SpotAllowed, pi.spec.PriceClass, a.Pool)
		}
	}
}

// checkOutcomes is property 3: every pending workload is admitted exactly
// once or waits exactly once, and nothing else is decided about.
func checkOutcomes(t *rapid.T, wd world, d engine.Decisions) {
	ws := byID(wd.pending)
	admitted, waits := map[string]int{}, map[string]int{}
	for _, a := range d.Admit {
		admitted[a.Workload]++
	}
	for _, wt := range d.Wait {
		if ws[wt.Workload] == nil {
			t.Fatalf("wait for %s, which is not pending", wt.Workload)
		}
		if wt.Reason == "" {
			t.Fatalf("wait for %s has no reason", wt.Workload)
		}
		waits[wt.Workload]++
	}
	for _, w := range wd.pending {
		if admitted[w.ID]+waits[w.ID] != 1 {
			t.Fatalf("%s is admitted %d time(s) and waits %d time(s)", w.ID, admitted[w.ID], waits[w.ID])
		}
	}
	for id := range admitted {
		if ws[id] == nil {
			t.Fatalf("admits %s, which is not pending", id)
		}
	}
	for _, p := range d.Preempt {
		if ws[p.For] == nil || admitted[p.For] == 0 {
			t.Fatalf("preempts %s for %s, which is not admitted", p.Workload, p.For)
		}
	}
}

// checkPreemptions: preemption happens only under a policy that allows it,
// in the pool the claimant is admitted to, and evicts only lower-priority
// work or, for a claimant within its own quota, work another team runs on
// borrowed quota at no higher priority.
func checkPreemptions(t *rapid.T, wd world, d engine.Decisions) {
	if len(d.Preempt) > 0 && !wd.pol.Preemption {
		t.Fatalf("preempts %d allocation(s) under a policy without preemption", len(d.Preempt))
	}
	ws := byID(wd.pending)
	running := map[string]engine.Allocation{}
	for _, a := range wd.snap.Running {
		running[a.Workload] = a
	}
	replay(d, func(pre []engine.Preemption, a engine.Admission) {
		w := ws[a.Workload]
		for _, p := range pre {
			v := running[p.Workload]
			if v.Pool != a.Pool {
				t.Fatalf("preempts %s in %s for %s, which is admitted to %s", v.Workload, v.Pool, w.ID, a.Pool)
			}
			reclaim := v.Borrowed && !a.Borrowed && v.Team != w.Team && v.Priority <= w.Priority
			if v.Priority >= w.Priority && !reclaim {
				t.Fatalf("preempts %s (team %s, priority %d, borrowed %v) for %s (team %s, priority %d, borrowed %v)", v.Workload, v.Team, v.Priority, v.Borrowed, w.ID, w.Team, w.Priority, a.Borrowed)
			}
		}
	})
}

// replay walks the decisions in the order the engine made them: the
// preemptions made for an admission, then the admission.
func replay(d engine.Decisions, visit func(pre []engine.Preemption, a engine.Admission)) {
	pre := map[string][]engine.Preemption{}
	for _, p := range d.Preempt {
		pre[p.For] = append(pre[p.For], p)
	}
	for _, a := range d.Admit {
		visit(pre[a.Workload], a)
	}
}

// checkQuotas is property 4: in a fleet with teams, an admission that takes
// its team over quota is marked Borrowed, and a borrowed one keeps its
// cohort within the cohort's summed quota.
func checkQuotas(t *rapid.T, wd world, d engine.Decisions) {
	f := wd.snap.Fleet
	if len(f.Teams) == 0 {
		return
	}
	usage := map[string]map[model.GPUModel]int{}
	for _, tm := range f.Teams {
		usage[tm.Name] = map[model.GPUModel]int{}
	}
	running := map[string]engine.Allocation{}
	for _, a := range wd.snap.Running {
		running[a.Workload] = a
		usage[a.Team][a.GPU] += a.GPUs()
	}
	ws := byID(wd.pending)
	replay(d, func(pre []engine.Preemption, a engine.Admission) {
		for _, p := range pre {
			v := running[p.Workload]
			usage[v.Team][v.GPU] -= v.GPUs()
		}
		w := ws[a.Workload]
		tm, ok := f.Team(w.Team)
		if !ok {
			t.Fatalf("admits %s of team %q, which the fleet does not list", w.ID, w.Team)
		}
		usage[tm.Name][a.GPU] += a.GPUs()
		if usage[tm.Name][a.GPU] > tm.Quota[a.GPU] && !a.Borrowed {
			t.Fatalf("admitting %s takes team %s to %d %s, over its quota %d, and it is not marked borrowed", w.ID, tm.Name, usage[tm.Name][a.GPU], a.GPU, tm.Quota[a.GPU])
		}
		if a.Borrowed {
			if tm.Cohort == "" {
				t.Fatalf("admission of %s is borrowed but team %s has no cohort", w.ID, tm.Name)
			}
			if u, q := cohortUse(f, usage, tm.Cohort, a.GPU), cohortQuota(f, tm.Cohort, a.GPU); u > q {
				t.Fatalf("borrowed admission of %s takes cohort %s to %d %s, over its quota %d", w.ID, tm.Cohort, u, a.GPU, q)
			}
		}
	})
}

// checkCohortTotals is the stronger form of property 4: after the round no
// cohort holds more of a GPU model than its members' summed quotas, even
// when a lender takes back its own quota while borrowers still run.
func checkCohortTotals(t *rapid.T, wd world, d engine.Decisions) {
	f := wd.snap.Fleet
	if len(f.Teams) == 0 {
		return
	}
	usage := map[string]map[model.GPUModel]int{}
	for _, tm := range f.Teams {
		usage[tm.Name] = map[model.GPUModel]int{}
	}
	running := map[string]engine.Allocation{}
	for _, a := range wd.snap.Running {
		running[a.Workload] = a
		usage[a.Team][a.GPU] += a.GPUs()
	}
	ws := byID(wd.pending)
	for _, a := range d.Admit {
		for _, p := range d.Preempt {
			if p.For == a.Workload {
				v := running[p.Workload]
				usage[v.Team][v.GPU] -= v.GPUs()
			}
		}
		team := ws[a.Workload].Team
		usage[team][a.GPU] += a.GPUs()
		if !a.Borrowed {
			continue
		}
		tm, _ := f.Team(team)
		if tm.Cohort == "" {
			t.Fatalf("%s is admitted on borrowed quota, but team %s has no cohort to borrow from", a.Workload, team)
		}
		if u, q := cohortUse(f, usage, tm.Cohort, a.GPU), cohortQuota(f, tm.Cohort, a.GPU); u > q {
			t.Fatalf("%s borrows %s from cohort %s, which then holds %d against a summed quota of %d", a.Workload, a.GPU, tm.Cohort, u, q)
		}
	}
}

// checkShareCap is property 5: replaying admissions, no provider's share of
// GPU-hours goes over the cap unless the admission is marked OverCap, and
// OverCap only under a policy with CapFallback.
func checkShareCap(t *rapid.T, wd world, d engine.Decisions) {
	pol := wd.pol
	for _, a := range d.Admit {
		if a.OverCap && (!pol.CapFallback || pol.MaxProviderShare <= 0) {
			t.Fatalf("admission of %s is over cap, but the policy has cap %v and cap_fallback %v", a.Workload, pol.MaxProviderShare, pol.CapFallback)
		}
	}
	if pol.MaxProviderShare <= 0 {
		return
	}
	used := map[model.Provider]float64{}
	total := 0.0
	for p, h := range wd.snap.ProviderGPUHours {
		used[p] = h
		total += h
	}
	floor := pol.ShareFloorGPUHours
	if floor <= 0 {
		for _, cl := range wd.snap.Fleet.Clusters {
			for _, p := range cl.Pools {
				floor += float64(p.GPUsPerNode * max(p.Nodes, p.MaxNodes))
			}
		}
		floor *= 24
	}
	// Running work counts what it is still expected to use in the window.
	provOf := map[engine.PoolRef]model.Provider{}
	for _, cl := range wd.snap.Fleet.Clusters {
		for _, p := range cl.Pools {
			provOf[engine.PoolRef{Cluster: cl.Name, Pool: p.Name}] = cl.Provider
		}
	}
	future := func(a engine.Allocation) float64 {
		end := a.ExpectedEnd
		if end.IsZero() {
			end = a.Started.Add(engine.DefaultDuration)
		}
		h := math.Min(end.Sub(wd.now).Hours(), pol.ShareWindow.Hours())
		return math.Max(0, h) * float64(a.GPUs())
	}
	running := map[string]engine.Allocation{}
	ahead := map[model.Provider]float64{}
	aheadTotal := 0.0
	for _, a := range wd.snap.Running {
		p, ok := provOf[a.Pool]
		if !ok {
			continue
		}
		running[a.Workload] = a
		used[p] += future(a)
		total += future(a)
		ahead[p] += future(a)
		aheadTotal += future(a)
	}
	ws := byID(wd.pending)
	for _, a := range d.Admit {
		for _, pe := range d.Preempt {
			if v, ok := running[pe.Workload]; ok && pe.For == a.Workload {
				used[provOf[v.Pool]] -= future(v)
				total -= future(v)
				ahead[provOf[v.Pool]] -= future(v)
				aheadTotal -= future(v)
			}
		}
		h := ws[a.Workload].Duration.Hours()
		if h <= 0 {
			h = 1
		}
		add := float64(a.GPUs()) * math.Min(h, pol.ShareWindow.Hours())
		// Both views of the window: around now (so far + expected) and
		// ahead (expected only).
		share := math.Max((used[a.Provider]+add)/math.Max(total+add, floor),
			(ahead[a.Provider]+add)/math.Max(aheadTotal+add, floor))
		if share > pol.MaxProviderShare+1e-9 && !a.OverCap {
			t.Fatalf("admitting %s gives %s %.4f of GPU-hours; the cap is %.4f and the admission is not marked over cap", a.Workload, a.Provider, share, pol.MaxProviderShare)
		}
		used[a.Provider] += add
		total += add
		ahead[a.Provider] += add
		aheadTotal += add
	}
}

// checkBudgets: no team's expected spend goes over its monthly budget.
func checkBudgets(t *rapid.T, wd world, d engine.Decisions) {
	f := wd.snap.Fleet
	spend := map[string]float64{}
	ws := byID(wd.pending)
	for _, a := range d.Admit {
		w := ws[a.Workload]
		tm, ok := f.Team(w.Team)
		if !ok || tm.MonthlyBudgetUSD <= 0 {
			continue
		}
		h := w.Duration.Hours()
		if h <= 0 {
			h = 1
		}
		spend[tm.Name] += a.Cost.BilledPerGPUHour * float64(a.GPUs()) * h
		if s := wd.snap.TeamSpendUSD[tm.Name] + spend[tm.Name]; s > tm.MonthlyBudgetUSD*(1+1e-9) {
			t.Fatalf("admitting %s takes team %s to $%.2f of its $%.2f budget", w.ID, tm.Name, s, tm.MonthlyBudgetUSD)
		}
	}
}

func TestPropertyScheduleInvariants(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		wd := genWorld(t, genCfg{maxPending: 40})
		before := cloneSnapshot(t, wd.snap)
		d := engine.Schedule(wd.snap, wd.pending, wd.pol, wd.now)
		if diff := cmp.Diff(before, wd.snap); diff != "" {
			t.Fatalf("Schedule changed its snapshot (-before +after):\n%s", diff)
		}
		checkCapacity(t, wd, d)
		checkGangs(t, wd, d)
		checkOutcomes(t, wd, d)
		checkPreemptions(t, wd, d)
		checkQuotas(t, wd, d)
		checkShareCap(t, wd, d)
		checkBudgets(t, wd, d)
	})
}

// A team may borrow only what its cohort has idle at that moment. Quota is
// nominal, not capacity: a lender's own work within its quota is admitted
// on free capacity even while a borrower holds the lent share (that
// borrowed work becomes the first to be reclaimed), so the cohort may end a
// round above its summed quota; what may not happen is borrowing into it.
func TestPropertyCohortTotals(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		wd := genWorld(t, genCfg{maxPending: 40})
		checkCohortTotals(t, wd, engine.Schedule(wd.snap, wd.pending, wd.pol, wd.now))
	})
}

func cloneSnapshot(t *rapid.T, s *engine.Snapshot) *engine.Snapshot {
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatalf("marshal snapshot: %v", err)
	}
	var out engine.Snapshot
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("unmarshal snapshot: %v", err)
	}
	return &out
}

// Property 6: the same inputs give the same bytes, and the order of the
// pending list changes only the order of the waits.
func TestPropertyDeterministic(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		wd := genWorld(t, genCfg{maxPending: 40})
		d1 := engine.Schedule(wd.snap, wd.pending, wd.pol, wd.now)
		d2 := engine.Schedule(wd.snap, wd.pending, wd.pol, wd.now)
		b1, err := json.Marshal(d1)
		if err != nil {
			t.Fatalf("marshal decisions: %v", err)
		}
		b2, _ := json.Marshal(d2)
		if string(b1) != string(b2) {
			t.Fatalf("two calls differ:\n%s\n%s", b1, b2)
		}
		perm := rapid.Permutation(wd.pending).Draw(t, "permutation")
		d3 := engine.Schedule(wd.snap, perm, wd.pol, wd.now)
		for _, d := range []*engine.Decisions{&d1, &d3} {
			sort.Slice(d.Wait, func(i, j int) bool { return d.Wait[i].Workload < d.Wait[j].Workload })
		}
		if diff := cmp.Diff(d1, d3); diff != "" {
			t.Fatalf("permuting pending changes the decisions (-given order +permuted):\n%s", diff)
		}
	})
}

// Property 7: Plan's first candidate is where Schedule puts a lone
// workload, and Plan finds nothing feasible when Schedule cannot place it
// (Plan does not preempt, so a round that preempts is not compared).
func TestPropertyPlanAgreesWithSchedule(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		wd := genWorld(t, genCfg{minPending: 1, maxPending: 1, hideRunning: rapid.Bool().Draw(t, "hideRunning")})
		w := wd.pending[0]
		d := engine.Schedule(wd.snap, wd.pending, wd.pol, wd.now)
		if len(d.Preempt) > 0 {
			// Plan does not consider preemption.
			return
		}
		cands := engine.Plan(wd.snap, wd.pol, w, wd.now)
		for i, c := range cands {
			if c.Rank != i+1 {
				t.Fatalf("candidate %d has rank %d", i, c.Rank)
			}
			if c.Feasible && i > 0 && !cands[i-1].Feasible {
				t.Fatalf("feasible candidate %d ranks after an infeasible one", c.Rank)
			}
		}
		if len(d.Admit) == 1 {
			a := d.Admit[0]
			if len(cands) == 0 || !cands[0].Feasible {
				t.Fatalf("Schedule admits %s to %s option %d (over cap %v); Plan's first candidate is not feasible: %+v", w.ID, a.Pool, a.Option, a.OverCap, cands)
			}
			c := cands[0]
			if c.Pool != a.Pool || c.Option != a.Option || c.OverCap != a.OverCap {
				t.Fatalf("Schedule admits %s to %s option %d (over cap %v); Plan ranks first %s option %d (over cap %v)", w.ID, a.Pool, a.Option, a.OverCap, c.Pool, c.Option, c.OverCap)
			}
			return
		}
		for _, c := range cands {
			if c.Feasible {
				t.Fatalf("Schedule leaves %s waiting (%s: %s); Plan finds %s option %d feasible (over cap %v)", w.ID, d.Wait[0].Reason, d.Wait[0].Detail, c.Pool, c.Option, c.OverCap)
			}
		}
	})
}

// Property 8: odd inputs neither panic nor get admitted; a workload the
// engine cannot reason about waits as InvalidWorkload.
func TestPropertyOddInputs(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var wd world
		if rapid.Bool().Draw(t, "emptyFleet") {
			f := &model.Fleet{Policy: model.DefaultPolicy()}
			if rapid.Bool().Draw(t, "emptyCluster") {
				f.Clusters = []model.Cluster{{Name: "c0", Provider: "aws", Region: "us-east-1", Pools: []model.Pool{{Name: "p0", GPU: "H100", GPUsPerNode: 8}}}}
			}
			wd = world{snap: &engine.Snapshot{Fleet: f}, pol: f.Policy, now: propNow, pending: genPending(t, f, 0, 5)}
		} else {
			wd = genWorld(t, genCfg{maxPending: 10})
		}
		odd, stranger := map[string]bool{}, map[string]bool{}
		for i, w := range wd.pending {
			switch rapid.IntRange(0, 5).Draw(t, "oddity") {
			case 0:
				w.Options = nil
				odd[w.ID] = true
			case 1:
				w.NumNodes = rapid.IntRange(-2, 0).Draw(t, "badNodes")
				odd[w.ID] = true
			case 2:
				w.Options[0].GPUsPerNode = rapid.SampledFrom([]int{-1, 0, model.MaxGPUsPerNode + 1}).Draw(t, "badGPN")
				odd[w.ID] = true
			case 3:
				w.Options[0].GPU = rapid.SampledFrom([]model.GPUModel{"", "B200"}).Draw(t, "oddGPU")
			case 4:
				w.Duration = -time.Hour
				w.Team = fmt.Sprintf("stranger%d", i)
				stranger[w.ID] = len(wd.snap.Fleet.Teams) > 0
			}
		}
		d := engine.Schedule(wd.snap, wd.pending, wd.pol, wd.now)
		checkCapacity(t, wd, d)
		checkOutcomes(t, wd, d)
		for _, a := range d.Admit {
			if odd[a.Workload] || stranger[a.Workload] {
				t.Fatalf("admits %s, which is invalid or of a team the fleet does not list", a.Workload)
			}
		}
		for _, wt := range d.Wait {
			if odd[wt.Workload] != (wt.Reason == engine.ReasonInvalid) {
				t.Fatalf("%s (invalid %v) waits with %s: %s", wt.Workload, odd[wt.Workload], wt.Reason, wt.Detail)
			}
			if stranger[wt.Workload] && wt.Reason != engine.ReasonUnknownTeam {
				t.Fatalf("%s of a team the fleet does not list waits with %s: %s", wt.Workload, wt.Reason, wt.Detail)
			}
		}
		for _, w := range wd.pending {
			cands := engine.Plan(wd.snap, wd.pol, w, wd.now)
			if odd[w.ID] && len(cands) != 0 {
				t.Fatalf("Plan gives %d candidates for invalid workload %s", len(cands), w.ID)
			}
		}
	})
}
