package engine

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"gpubroker/internal/model"
)

// benchWorld builds the benchmark's fleet and queue: clusters over six
// providers with committed, on-demand and spot pools, spend and capacity
// contracts, eight teams in two cohorts with quotas, weights, one monthly
// budget and one residency rule, a 60% provider cap, and pending jobs of
// mixed sizes from 1 GPU to 32-node gangs. Seeded, so every run is the same.
func benchWorld(clusters, jobs int) (*Snapshot, []*model.Workload, model.Policy, time.Time) {
	rng := rand.New(rand.NewPCG(1, 2))
	now := time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)
	providers := []model.Provider{"aws", "azure", "gcp", "oci", "coreweave", "onprem"}
	gpus := []model.GPUModel{"H100", "H200", "A100-80GB", "GB200", "L40S", "L4"}
	gpn := map[model.GPUModel]int{"H100": 8, "H200": 8, "A100-80GB": 8, "GB200": 4, "L40S": 8, "L4": 8}
	price := map[model.GPUModel]float64{"H100": 4, "H200": 5, "A100-80GB": 2.5, "GB200": 9, "L40S": 1.6, "L4": 0.8}
	f := &model.Fleet{Policy: model.DefaultPolicy()}
	for _, p := range providers {
		f.Providers = append(f.Providers, model.ProviderInfo{Name: p, EgressPerGB: 0.05, SpotPreemptionPerHour: 0.05})
	}
	f.Contracts = []model.Contract{
		{Name: "aws-7y", Provider: "aws", Kind: model.SpendCommitment, Start: now.AddDate(-1, 0, 0), End: now.AddDate(6, 0, 0), SpendUSD: 38e9, Discount: 0.3, TakeOrPay: true},
		{Name: "azure-h100", Provider: "azure", Kind: model.CapacityCommitment, Start: now.AddDate(-1, 0, 0), End: now.AddDate(2, 0, 0), GPU: "H100", GPUs: 50000, TakeOrPay: true},
	}
	regions := []string{"us-east", "us-west", "eu-west", "eu-north", "ap-south"}
	for i := 0; i < clusters; i++ {
		p := providers[i%len(providers)]
		cl := model.Cluster{Name: fmt.Sprintf("c%04d", i), Provider: p, Region: string(p) + "-" + regions[i%len(regions)], Backend: model.BackendKubernetes}
		for j := 0; j < 2; j++ {
			g := gpus[rng.IntN(len(gpus))]
			pl := model.Pool{Name: fmt.Sprintf("p%d", j), GPU: g, GPUsPerNode: gpn[g], Nodes: 32 + rng.IntN(64), PriceClass: model.OnDemand, PricePerGPUHour: price[g] * (0.8 + 0.4*rng.Float64())}
			switch {
			case p == "onprem" || (p == "azure" && g == "H100" && j == 0):
				pl.PriceClass = model.Committed
			case p == "gcp" && j == 1:
				pl.PriceClass = model.Spot
				pl.PricePerGPUHour *= 0.4
			case p == "coreweave" && j == 1:
				pl.MaxNodes = pl.Nodes + 32
			}
			cl.Pools = append(cl.Pools, pl)
		}
		f.Clusters = append(f.Clusters, cl)
	}
	for i := 0; i < 8; i++ {
		t := model.Team{Name: fmt.Sprintf("team%d", i), Weight: float64(1 + i%3), Cohort: fmt.Sprintf("cohort%d", i%2), Quota: map[model.GPUModel]int{}}
		for _, g := range gpus {
			t.Quota[g] = 40000
		}
		if i == 5 {
			t.MonthlyBudgetUSD = 50e6
		}
		if i == 6 {
			t.Regions = []string{"aws-eu-west", "azure-eu-west", "gcp-eu-west", "oci-eu-west", "coreweave-eu-west", "onprem-eu-west", "aws-eu-north", "gcp-eu-north"}
		}
		f.Teams = append(f.Teams, t)
	}
	pol := f.Policy
	pol.MaxProviderShare = 0.6
	pol.ShareFloorGPUHours = 1e6
	pol.CapFallback = true
	pol.MaxPricePerGPUHour = map[model.GPUModel]float64{"*": 12}
	f.Policy = pol
	if err := f.Validate(); err != nil {
		panic(err)
	}
	snap := &Snapshot{Fleet: f, ContractSpentUSD: map[string]float64{"aws-7y": 3e9}, ProviderGPUHours: map[model.Provider]float64{}}
	for _, p := range providers {
		snap.ProviderGPUHours[p] = 1e5
	}
	// A fifth of the nodes are busy with running single-node work, some of
	// it on borrowed quota, so preemption has victims to consider.
	for ci := range f.Clusters {
		cl := &f.Clusters[ci]
		for pi := range cl.Pools {
			p := &cl.Pools[pi]
			free := make([]int, p.Nodes)
			for k := range free {
				free[k] = p.GPUsPerNode
				if k%5 == 0 {
					free[k] = 0
					snap.Running = append(snap.Running, Allocation{
						Workload: fmt.Sprintf("run-%s-%s-%d", cl.Name, p.Name, k), Team: fmt.Sprintf("team%d", k%8), Priority: k % 3,
						Pool: PoolRef{cl.Name, p.Name}, Nodes: []int{k}, GPUsPerNode: p.GPUsPerNode, GPU: p.GPU,
						Borrowed: k%10 == 0, Started: now.Add(-time.Duration(k) * time.Minute),
					})
				}
			}
			snap.Pools = append(snap.Pools, PoolState{Ref: PoolRef{cl.Name, p.Name}, NodeFree: free})
		}
	}
	// Mixed sizes: most jobs are small, a few are large gangs; about
	// 10 GPUs on average, so the queue asks for about as much as is free.
	shapes := []struct{ nodes, g int }{{1, 1}, {1, 1}, {1, 1}, {1, 2}, {1, 4}, {1, 8}, {1, 8}, {2, 8}, {4, 8}, {16, 8}}
	pending := make([]*model.Workload, jobs)
	for i := range pending {
		s := shapes[rng.IntN(len(shapes))]
		g := gpus[rng.IntN(len(gpus))]
		if s.g > gpn[g] {
			s.g = gpn[g]
		}
		w := &model.Workload{
			ID: fmt.Sprintf("j%06d", i), Kind: model.Job, Team: fmt.Sprintf("team%d", rng.IntN(8)),
			Priority: rng.IntN(3), NumNodes: s.nodes, Order: model.AnyOf,
			Options:   []model.Resources{{GPU: g, GPUsPerNode: s.g, AllowSpot: rng.IntN(2) == 0}},
			Duration:  time.Duration(1+rng.IntN(72)) * time.Hour,
			Submitted: now.Add(-time.Duration(rng.IntN(86400)) * time.Second),
		}
		if rng.IntN(4) == 0 {
			w.CheckpointInterval = 30 * time.Minute
		}
		if rng.IntN(10) == 0 {
			alt := gpus[rng.IntN(len(gpus))]
			w.Options = append(w.Options, model.Resources{GPU: alt, GPUsPerNode: min(s.g, gpn[alt])})
		}
		pending[i] = w
	}
	return snap, pending, pol, now
}

// BenchmarkScheduleRound is issue 2's goal: one round over 1,000 clusters
// and 100,000 pending jobs with every constraint on. Run it with
// GOMAXPROCS=1 (see docs/benchmarks.md).
func BenchmarkScheduleRound(b *testing.B) {
	snap, pending, pol, now := benchWorld(1000, 100000)
	var admitted int
	b.ReportAllocs()
	cpu0 := cpuSeconds()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d := Schedule(snap, pending, pol, now)
		admitted = len(d.Admit)
	}
	b.StopTimer()
	sec := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(float64(admitted)/sec, "placements/s")
	b.ReportMetric(float64(len(pending))/sec, "decisions/s")
	b.ReportMetric(float64(admitted), "admitted")
	// On a shared machine wall time includes other tenants; CPU time
	// spent by this process (all threads, GC included) does not.
	if cpu := (cpuSeconds() - cpu0) / float64(b.N); cpu > 0 {
		b.ReportMetric(float64(admitted)/cpu, "placements/cpu-s")
	}
}

// cpuSeconds is the user+system CPU time this process has used.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// BenchmarkPlacementScaling grows the fleet tenfold twice and times the
// placements alone: a Scheduler reads the snapshot and builds its class
// lists on an untimed first round over copies of the 2,000 jobs, then the
// timed round places the jobs themselves with those indexes; even the
// smallest fleet has room for both, so every size does the same work. The segment trees make each
// decision O(log pools); compare ns/decision across the sub-benchmarks of
// one run. (A whole round also pays O(pools + nodes) to read the snapshot;
// see BenchmarkScheduleRound.)
func BenchmarkPlacementScaling(b *testing.B) {
	for _, clusters := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("clusters=%d", clusters), func(b *testing.B) {
			snap, timed, pol, now := benchWorld(clusters, 2000)
			warm := make([]*model.Workload, len(timed))
			for i, w := range timed {
				c := *w
				c.ID = "warm-" + w.ID
				warm[i] = &c
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				s := NewScheduler(snap, pol, now)
				s.Schedule(warm, now)
				b.StartTimer()
				s.Schedule(timed, now)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(timed)), "ns/decision")
		})
	}
}
