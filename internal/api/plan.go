package api

import (
	"time"

	"gpubroker/internal/model"
)

// PlanRequest is the body of POST /v1/plan.
type PlanRequest struct {
	Spec string `json:"spec"`
	Team string `json:"team,omitempty"`
	File string `json:"file,omitempty"`
}

// Plan is the `gpubroker plan -o json` document; POST /v1/plan answers it
// with the parser's Warnings. Field names and order only ever grow.
type Plan struct {
	Fleet     string         `json:"fleet"`
	Now       time.Time      `json:"now"`
	Workloads []WorkloadPlan `json:"workloads"`
	// Warnings is set by POST /v1/plan only (nil: left out).
	Warnings []string `json:"warnings,omitempty"`
}

// WorkloadPlan is one workload's plan: its shape, its options, how many
// candidates are feasible, and every candidate in rank order.
type WorkloadPlan struct {
	Name       string             `json:"name"`
	Kind       model.WorkloadKind `json:"kind"`
	Team       string             `json:"team,omitempty"`
	Priority   int                `json:"priority"`
	NumNodes   int                `json:"num_nodes"`
	Order      model.OptionOrder  `json:"order"`
	Options    []PlanOption       `json:"options"`
	Feasible   int                `json:"feasible"`
	Candidates []Candidate        `json:"candidates"`
}

// PlanOption is one resource option of a planned workload.
type PlanOption struct {
	GPU          model.GPUModel `json:"gpu"`
	GPUsPerNode  int            `json:"gpus_per_node"`
	Provider     model.Provider `json:"provider,omitempty"`
	Region       string         `json:"region,omitempty"`
	InstanceType string         `json:"instance_type,omitempty"`
	UseSpot      bool           `json:"use_spot,omitempty"`
	AllowSpot    bool           `json:"allow_spot,omitempty"`
}

// Candidate is one pool that could run a workload: its rank (1: where the
// scheduler would place it), its cost, and every reason it was rejected.
type Candidate struct {
	Rank         int              `json:"rank"`
	Pool         PoolRef          `json:"pool"`
	Provider     model.Provider   `json:"provider"`
	Region       string           `json:"region"`
	InstanceType string           `json:"instance_type,omitempty"`
	Option       int              `json:"option"`
	GPU          model.GPUModel   `json:"gpu"`
	GPUsPerNode  int              `json:"gpus_per_node"`
	NumNodes     int              `json:"num_nodes"`
	PriceClass   model.PriceClass `json:"price_class"`
	// ListPerHour and EffectivePerHour are for the whole workload.
	ListPerHour      float64 `json:"list_per_hour"`
	EffectivePerHour float64 `json:"effective_per_hour"`
	Cost             Cost    `json:"cost"`
	Feasible         bool    `json:"feasible"`
	// OverCap marks a candidate admitted over the provider share cap.
	OverCap    bool        `json:"over_cap,omitempty"`
	Rejections []Rejection `json:"rejections,omitempty"`
}

// PoolRef names a pool of a cluster.
type PoolRef struct {
	Cluster string `json:"cluster"`
	Pool    string `json:"pool"`
}

func (r PoolRef) String() string { return r.Cluster + "/" + r.Pool }

// Cost is what one GPU-hour of a placement costs, broken down
// (docs/adr/0002-engine-semantics.md).
type Cost struct {
	ListPerGPUHour      float64 `json:"list_per_gpu_hour"`
	Discount            float64 `json:"discount"`
	CommittedCredit     float64 `json:"committed_credit"`
	ShadowDiscount      float64 `json:"shadow_discount"`
	SpotRisk            float64 `json:"spot_risk"`
	Egress              float64 `json:"egress"`
	BilledPerGPUHour    float64 `json:"billed_per_gpu_hour"`
	EffectivePerGPUHour float64 `json:"effective_per_gpu_hour"`
}

// Rejection is why a candidate cannot run the workload: the engine's
// reason constant (InsufficientCapacity, QuotaExceeded, ...) and detail.
type Rejection struct {
	Reason string `json:"reason"`
	Detail string `json:"detail"`
}
