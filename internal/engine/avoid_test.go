package engine

import (
	"testing"
	"time"

	"gpubroker/internal/model"
)

// A workload whose recovery must leave a region (eager_next_region) goes
// to the cheapest pool elsewhere, and waits with RecoveryAvoidsRegion when
// only the avoided region could run it.
func TestAvoidRegions(t *testing.T) {
	pool := func(name string, price float64) model.Pool {
		return model.Pool{Name: name, GPU: "H100", GPUsPerNode: 8, Nodes: 1, PriceClass: model.OnDemand, PricePerGPUHour: price}
	}
	fleet := &model.Fleet{Policy: model.DefaultPolicy(), Clusters: []model.Cluster{
		{Name: "cheap", Provider: "aws", Region: "us-east-1", Backend: model.BackendSlurm, Pools: []model.Pool{pool("h100", 1)}},
		{Name: "dear", Provider: "azure", Region: "eastus", Backend: model.BackendKubernetes, Pools: []model.Pool{pool("h100", 5)}},
	}}
	fleet.Policy.FairShare = false
	job := func(id string, avoid ...string) *model.Workload {
		return &model.Workload{ID: id, Kind: model.Job, NumNodes: 1, Order: model.AnyOf, AvoidRegions: avoid,
			Options: []model.Resources{{GPU: "H100", GPUsPerNode: 8}}}
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

	d := Schedule(&Snapshot{Fleet: fleet}, []*model.Workload{job("1", "us-east-1")}, fleet.Policy, now)
	if len(d.Admit) != 1 || d.Admit[0].Pool.Cluster != "dear" {
		t.Fatalf("admissions %+v; want job 1 on dear (cheap's region is avoided)", d.Admit)
	}
	d = Schedule(&Snapshot{Fleet: fleet}, []*model.Workload{job("1")}, fleet.Policy, now)
	if len(d.Admit) != 1 || d.Admit[0].Pool.Cluster != "cheap" {
		t.Fatalf("admissions %+v; want job 1 on cheap without avoidance", d.Admit)
	}
	d = Schedule(&Snapshot{Fleet: fleet}, []*model.Workload{job("1", "us-east-1", "eastus")}, fleet.Policy, now)
	if len(d.Admit) != 0 || len(d.Wait) != 1 || d.Wait[0].Reason != ReasonAvoidRegion {
		t.Fatalf("decisions %+v; want job 1 waiting with %s", d, ReasonAvoidRegion)
	}
}
