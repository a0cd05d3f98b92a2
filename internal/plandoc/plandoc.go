package plandoc

import (
	"gpubroker/internal/api"
	"gpubroker/internal/engine"
	"gpubroker/internal/model"
)

// Describe is w's plan in the printed form: its shape, its options, how
// many of cands are feasible, and cands in rank order (never nil).
func Describe(w *model.Workload, cands []engine.Candidate) api.WorkloadPlan {
	wp := api.WorkloadPlan{
		Name: w.Name, Kind: w.Kind, Team: w.Team, Priority: w.Priority, NumNodes: w.NumNodes,
		Order: w.Order, Options: make([]api.PlanOption, 0, len(w.Options)), Candidates: make([]api.Candidate, 0, len(cands)),
	}
	switch {
	case wp.Name == "" && w.ID != "":
		wp.Name = w.ID
	case wp.Name == "":
		wp.Name = "(unnamed)"
	}
	for _, c := range cands {
		if c.Feasible {
			wp.Feasible++
		}
		wp.Candidates = append(wp.Candidates, Candidate(c))
	}
	for _, o := range w.Options {
		wp.Options = append(wp.Options, api.PlanOption{GPU: o.GPU, GPUsPerNode: o.GPUsPerNode, Provider: o.Provider,
			Region: o.Region, InstanceType: o.InstanceType, UseSpot: o.UseSpot, AllowSpot: o.AllowSpot})
	}
	return wp
}

// Candidate is one engine candidate on the wire.
func Candidate(c engine.Candidate) api.Candidate {
	out := api.Candidate{
		Rank: c.Rank, Pool: api.PoolRef{Cluster: c.Pool.Cluster, Pool: c.Pool.Pool},
		Provider: c.Provider, Region: c.Region, InstanceType: c.InstanceType, Option: c.Option,
		GPU: c.GPU, GPUsPerNode: c.GPUsPerNode, NumNodes: c.NumNodes, PriceClass: c.PriceClass,
		ListPerHour: c.ListPerHour, EffectivePerHour: c.EffectivePerHour,
		Cost: api.Cost{
			ListPerGPUHour: c.Cost.ListPerGPUHour, Discount: c.Cost.Discount, CommittedCredit: c.Cost.CommittedCredit,
			ShadowDiscount: c.Cost.ShadowDiscount, SpotRisk: c.Cost.SpotRisk, Egress: c.Cost.Egress,
			BilledPerGPUHour: c.Cost.BilledPerGPUHour, EffectivePerGPUHour: c.Cost.EffectivePerGPUHour,
		},
		Feasible: c.Feasible, OverCap: c.OverCap,
	}
	for _, r := range c.Rejections {
		out.Rejections = append(out.Rejections, api.Rejection{Reason: string(r.Reason), Detail: r.Detail})
	}
	return out
}
