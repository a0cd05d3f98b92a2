package sim

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"gpubroker/internal/model"
)

var t0 = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

func wl(id string, at time.Duration, gpus int, dur time.Duration) *model.Workload {
	nodes, per := 1, gpus
	if gpus > 8 {
		nodes, per = (gpus+7)/8, 8
	}
	return &model.Workload{
		ID: id, Kind: model.Job, Team: "lab", NumNodes: nodes, Order: model.AnyOf,
		Options:  []model.Resources{{GPU: "H100", GPUsPerNode: per}},
		Duration: dur, Submitted: t0.Add(at),
	}
}

func pool(name string, gpu model.GPUModel, nodes int, class model.PriceClass, price float64) model.Pool {
	return model.Pool{Name: name, GPU: gpu, GPUsPerNode: 8, Nodes: nodes, PriceClass: class, PricePerGPUHour: price}
}

func cluster(name string, p model.Provider, pools ...model.Pool) model.Cluster {
	return model.Cluster{Name: name, Provider: p, Region: string(p) + "-1", Backend: model.BackendCloud, Pools: pools}
}

// randomFleet builds a mixed fleet of n clusters over six providers.
func randomFleet(n int, rng *rand.Rand) *model.Fleet {
	provs := []model.Provider{"aws", "azure", "coreweave", "gcp", "lambda", "oci"}
	f := &model.Fleet{Policy: model.DefaultPolicy()}
	for _, p := range provs {
		f.Providers = append(f.Providers, model.ProviderInfo{Name: p, SpotPreemptionPerHour: 0.05})
	}
	gpus := []struct {
		m     model.GPUModel
		price float64
	}{{"H100", 3.0}, {"A100", 1.8}, {"V100", 0.9}, {"P100", 0.6}}
	for i := 0; i < n; i++ {
		p := provs[i%len(provs)]
		g := gpus[rng.IntN(len(gpus))]
		price := g.price * (0.8 + 0.4*rng.Float64())
		cl := cluster(fmt.Sprintf("c%04d", i), p,
			pool("od", g.m, 4+rng.IntN(30), model.OnDemand, price),
			pool("spot", g.m, 2+rng.IntN(8), model.Spot, price*0.4))
		if i%5 == 0 {
			el := pool("elastic", g.m, 0, model.OnDemand, price*1.1)
			el.MaxNodes = 16
			cl.Pools = append(cl.Pools, el)
		}
		if i%7 == 0 {
			cl.Pools = append(cl.Pools, pool("committed", g.m, 8+rng.IntN(16), model.Committed, price*0.7))
		}
		f.Clusters = append(f.Clusters, cl)
	}
	return f
}

// randomJobs draws n jobs over GPU models, sizes 1..128 GPUs and durations
// from minutes to a day, arriving over about a week.
func randomJobs(n int, rng *rand.Rand, models ...model.GPUModel) []*model.Workload {
	sizes := []int{1, 1, 1, 2, 4, 8, 8, 16, 32, 64, 128}
	ws := make([]*model.Workload, n)
	at := time.Duration(0)
	for i := range ws {
		at += time.Duration(rng.ExpFloat64() * float64(10*time.Minute))
		g := sizes[rng.IntN(len(sizes))]
		w := wl(fmt.Sprintf("w%05d", i), at, g, time.Duration(float64(time.Minute)*(1+rng.ExpFloat64()*120)))
		w.Options[0].GPU = models[rng.IntN(len(models))]
		w.Team = fmt.Sprintf("team%d", rng.IntN(4))
		if i%3 == 0 {
			w.CheckpointInterval = 20 * time.Minute
		}
		ws[i] = w
	}
	return ws
}

func mustRun(t testing.TB, cfg Config, ws []*model.Workload) *Result {
	t.Helper()
	r, err := Run(cfg, ws)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func near(a, b float64) bool {
	d := a - b
	if d < 0 {
		d = -d
	}
	return d <= 1e-9*max(1, abs(a), abs(b))
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
