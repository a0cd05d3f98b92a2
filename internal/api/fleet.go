package api

import (
	"time"

	"gpubroker/internal/model"
)

// FleetDoc is the applied fleet file (GET /v1/fleet).
type FleetDoc struct {
	Version int64  `json:"version"`
	Fleet   string `json:"fleet"`
	// Error, when set, says why this fleet is not in force: it does not
	// validate with this server (stored by an older version, say). The
	// server then runs the fleet it had before, or none (nothing is
	// scheduled) until a valid fleet is applied.
	Error string `json:"error,omitempty"`
}

// FleetRequest is the body of PUT /v1/fleet.
type FleetRequest struct {
	Fleet string `json:"fleet"`
}

// FleetApplied is the answer of PUT /v1/fleet.
type FleetApplied struct {
	Version  int64    `json:"version"`
	Warnings []string `json:"warnings"`
}

// Cluster is one cluster of the fleet with its pools (GET /v1/clusters).
type Cluster struct {
	Name     string         `json:"name"`
	Provider model.Provider `json:"provider"`
	Region   string         `json:"region"`
	Backend  string         `json:"backend"`
	// Healthy: the cluster answered its last health check and takes
	// work (State is HEALTHY).
	Healthy bool `json:"healthy"`
	// State is HEALTHY, CLOSED (answers, its attempts run on, takes no
	// new work), UNHEALTHY (its last check failed or timed out) or
	// UNKNOWN (not checked yet; takes no work). Empty from servers
	// older than the field: Healthy says it then.
	State string `json:"state,omitempty"`
	// Why says why an unhealthy cluster takes no work: the check's error,
	// one line, bounded ("health check timed out after 10s").
	Why string `json:"why,omitempty"`
	// CheckedAt is when the last health check answered or was given up;
	// absent when none has.
	CheckedAt *time.Time `json:"checked_at,omitempty"`
	Pools     []Pool     `json:"pools"`
}

// Pool is one block of identical capacity and how much of it is free.
type Pool struct {
	Name        string           `json:"name"`
	GPU         model.GPUModel   `json:"gpu"`
	GPUsPerNode int              `json:"gpus_per_node"`
	Nodes       int              `json:"nodes"`
	GPUsFree    int              `json:"gpus_free"`
	PriceClass  model.PriceClass `json:"price_class"`
}

// GPUs is the pool's size.
func (p Pool) GPUs() int { return p.GPUsPerNode * p.Nodes }

// ClusterList is the answer of GET /v1/clusters.
type ClusterList struct {
	Clusters []Cluster `json:"clusters"`
}

// Team is one team with what it holds now and spent this month
// (GET /v1/teams).
type Team struct {
	Name              string                 `json:"name"`
	Cohort            string                 `json:"cohort,omitempty"`
	Weight            float64                `json:"weight"`
	Quota             map[model.GPUModel]int `json:"quota"`
	InUse             map[model.GPUModel]int `json:"in_use"`
	MonthlyBudgetUSD  float64                `json:"monthly_budget_usd"`
	SpendThisMonthUSD float64                `json:"spend_this_month_usd"`
}

// TeamList is the answer of GET /v1/teams.
type TeamList struct {
	Teams []Team `json:"teams"`
}

// The columns GET /v1/usage can group by.
var UsageColumns = []string{"provider", "team", "cluster", "pool", "price_class", "contract"}

// Usage is the answer of GET /v1/usage: GPU-hours and cost over
// [Since, Until), grouped by the columns By names.
type Usage struct {
	Since        time.Time  `json:"since"`
	Until        time.Time  `json:"until"`
	By           []string   `json:"by"`
	Rows         []UsageRow `json:"rows"`
	TotalCostUSD float64    `json:"total_cost_usd"`
}

// UsageRow is one group: a string per column of Usage.By, plus the
// numbers "gpu_hours" and "cost_usd". It stays a map because its keys
// are the columns asked for.
type UsageRow map[string]any

// Column is the row's value of a grouping column, "" when absent.
func (r UsageRow) Column(name string) string {
	s, _ := r[name].(string)
	return s
}

// GPUHours is the group's GPU-hours.
func (r UsageRow) GPUHours() float64 { return r.number("gpu_hours") }

// CostUSD is the group's cost.
func (r UsageRow) CostUSD() float64 { return r.number("cost_usd") }

func (r UsageRow) number(key string) float64 {
	switch v := r[key].(type) {
	case float64:
		return v
	case int:
		return float64(v)
	}
	return 0
}
