package plandoc

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"gpubroker/internal/api"
	"gpubroker/internal/engine"
	"gpubroker/internal/model"
)

func TestDescribe(t *testing.T) {
	t.Parallel()
	w := &model.Workload{ID: "w-1", Kind: model.Job, NumNodes: 2, Order: model.AnyOf,
		Options: []model.Resources{{GPU: "H100", GPUsPerNode: 8, AllowSpot: true, CPUs: 4}}}
	cands := []engine.Candidate{
		{Rank: 1, Pool: engine.PoolRef{Cluster: "c", Pool: "p"}, Provider: "aws", GPU: "H100", GPUsPerNode: 8, NumNodes: 2,
			Cost: engine.Cost{ListPerGPUHour: 3, EffectivePerGPUHour: 2}, Feasible: true},
		{Rank: 2, Pool: engine.PoolRef{Cluster: "c", Pool: "q"}, Provider: "aws", GPU: "H100", GPUsPerNode: 8, NumNodes: 2,
			Rejections: []engine.Rejection{{Reason: engine.ReasonNoCapacity, Detail: "full"}}},
	}
	want := api.WorkloadPlan{Name: "w-1", Kind: model.Job, NumNodes: 2, Order: model.AnyOf,
		Options:  []api.PlanOption{{GPU: "H100", GPUsPerNode: 8, AllowSpot: true}},
		Feasible: 1,
		Candidates: []api.Candidate{
			{Rank: 1, Pool: api.PoolRef{Cluster: "c", Pool: "p"}, Provider: "aws", GPU: "H100", GPUsPerNode: 8, NumNodes: 2,
				Cost: api.Cost{ListPerGPUHour: 3, EffectivePerGPUHour: 2}, Feasible: true},
			{Rank: 2, Pool: api.PoolRef{Cluster: "c", Pool: "q"}, Provider: "aws", GPU: "H100", GPUsPerNode: 8, NumNodes: 2,
				Rejections: []api.Rejection{{Reason: string(engine.ReasonNoCapacity), Detail: "full"}}},
		}}
	if diff := cmp.Diff(want, Describe(w, cands)); diff != "" {
		t.Errorf("Describe (-want +got):\n%s", diff)
	}
	if got := Describe(&model.Workload{}, nil); got.Name != "(unnamed)" || got.Candidates == nil || got.Options == nil {
		t.Errorf("an empty workload: %+v; want (unnamed) with empty, not nil, lists", got)
	}
}
