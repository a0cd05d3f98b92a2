package engine

import (
	"fmt"

	"gpubroker/internal/model"
)

// checkCtx is what the static checkers read: one resource option of one
// workload, its team, and the policy.
type checkCtx struct {
	w    *model.Workload
	opt  *model.Resources
	team *model.Team // nil when the fleet has no teams
	pol  *model.Policy
	// explain asks checkers for their detail text; building a class checks
	// thousands of pools and needs it only once per reason.
	explain bool
}

// why formats a rejection's detail when asked to explain.
func (c *checkCtx) why(format string, args ...any) string {
	if !c.explain {
		return ""
	}
	return fmt.Sprintf(format, args...)
}

// checker is one constraint. It returns "" when the pool passes, else the
// reason and a detail a user can act on.
type checker struct {
	name  string
	check func(c *checkCtx, pl *pool) (Reason, string)
}

// staticCheckers hold the constraints that do not change within a round
// and do not depend on the gang's size (so alike workloads of any size share
// one candidate list); gang size is checked against capacity by the search.
// Order matters only for messages: the first failure is what a waiting
// workload reports.
var staticCheckers = []checker{
	{"gpu", checkGPU},
	{"shape", checkShape},
	{"instance-type", checkInstanceType},
	{"provider", checkProvider},
	{"region", checkRegion},
	{"residency", checkResidency},
	{"avoid-region", checkAvoidRegion},
	{"spot", checkSpot},
	{"spot-policy", checkSpotPolicy},
	{"price-ceiling", checkPriceCeiling},
	{"max-hourly-cost", checkMaxHourlyCost},
	{"health", checkHealth},
}

func checkGPU(c *checkCtx, pl *pool) (Reason, string) {
	if pl.spec.GPU != c.opt.GPU {
		return ReasonGPUModel, c.why("pool has %s, workload asks for %s", pl.spec.GPU, c.opt.GPU)
	}
	return "", ""
}

func checkShape(c *checkCtx, pl *pool) (Reason, string) {
	if c.opt.GPUsPerNode > pl.gpn {
		return ReasonShape, c.why("nodes have %d GPUs, workload asks for %d per node", pl.gpn, c.opt.GPUsPerNode)
	}
	if cpus := pl.spec.CPUsPerNode; cpus > 0 && c.opt.CPUs > 0 {
		if (c.opt.CPUsAtLeast && cpus < c.opt.CPUs) || (!c.opt.CPUsAtLeast && cpus != c.opt.CPUs) {
			return ReasonShape, c.why("nodes have %g vCPUs, workload asks for %s", cpus, amount(c.opt.CPUs, c.opt.CPUsAtLeast))
		}
	}
	if mem := pl.spec.MemoryGiBPerNode; mem > 0 && c.opt.MemoryGiB > 0 {
		if (c.opt.MemoryAtLeast && mem < c.opt.MemoryGiB) || (!c.opt.MemoryAtLeast && mem != c.opt.MemoryGiB) {
			return ReasonShape, c.why("nodes have %g GiB memory, workload asks for %s", mem, amount(c.opt.MemoryGiB, c.opt.MemoryAtLeast))
		}
	}
	return "", ""
}

func amount(v float64, atLeast bool) string {
	if atLeast {
		return fmt.Sprintf("%g+", v)
	}
	return fmt.Sprintf("%g", v)
}

func checkInstanceType(c *checkCtx, pl *pool) (Reason, string) {
	if c.opt.InstanceType != "" && c.opt.InstanceType != pl.spec.InstanceType {
		return ReasonInstanceType, c.why("pool is %q, workload asks for %q", pl.spec.InstanceType, c.opt.InstanceType)
	}
	return "", ""
}

func checkProvider(c *checkCtx, pl *pool) (Reason, string) {
	if c.opt.Provider != "" && c.opt.Provider != pl.cluster.Provider {
		return ReasonProvider, c.why("pool is on %s, workload asks for %s", pl.cluster.Provider, c.opt.Provider)
	}
	return "", ""
}

func checkRegion(c *checkCtx, pl *pool) (Reason, string) {
	if c.opt.Region != "" && c.opt.Region != pl.cluster.Region {
		return ReasonRegion, c.why("pool is in %s, workload asks for %s", pl.cluster.Region, c.opt.Region)
	}
	if c.opt.Zone != "" && pl.cluster.Zone != "" && c.opt.Zone != pl.cluster.Zone {
		return ReasonRegion, c.why("pool is in zone %s, workload asks for %s", pl.cluster.Zone, c.opt.Zone)
	}
	return "", ""
}

func checkResidency(c *checkCtx, pl *pool) (Reason, string) {
	if len(c.pol.Regions) > 0 && !contains(c.pol.Regions, pl.cluster.Region) {
		return ReasonResidency, c.why("policy allows only regions %v; pool is in %s", c.pol.Regions, pl.cluster.Region)
	}
	if c.team != nil && len(c.team.Regions) > 0 && !contains(c.team.Regions, pl.cluster.Region) {
		return ReasonResidency, c.why("team %s may run only in %v; pool is in %s", c.team.Name, c.team.Regions, pl.cluster.Region)
	}
	return "", ""
}

func checkAvoidRegion(c *checkCtx, pl *pool) (Reason, string) {
	if contains(c.w.AvoidRegions, pl.cluster.Region) {
		return ReasonAvoidRegion, c.why("job_recovery EAGER_NEXT_REGION: the previous attempt was lost or preempted in %s; this one must run in another region", pl.cluster.Region)
	}
	return "", ""
}

func checkSpot(c *checkCtx, pl *pool) (Reason, string) {
	spot := pl.spec.PriceClass == model.Spot
	switch {
	case c.opt.UseSpot && !spot:
		return ReasonSpot, "workload asks for spot (use_spot: true); pool is " + string(pl.spec.PriceClass)
	case !c.opt.UseSpot && !c.opt.AllowSpot && spot:
		return ReasonSpot, "pool is spot; workload does not allow spot (set use_spot: true)"
	}
	return "", ""
}

func checkSpotPolicy(c *checkCtx, pl *pool) (Reason, string) {
	if pl.spec.PriceClass == model.Spot && !c.pol.SpotAllowed {
		return ReasonSpotForbidden, "the fleet policy does not allow spot capacity"
	}
	return "", ""
}

func checkPriceCeiling(c *checkCtx, pl *pool) (Reason, string) {
	ceil, ok := c.pol.MaxPricePerGPUHour[pl.spec.GPU]
	if !ok {
		ceil, ok = c.pol.MaxPricePerGPUHour["*"]
	}
	if ok && pl.cost.list > ceil {
		return ReasonPriceCeiling, c.why("list $%.2f/GPU-h is above the policy ceiling $%.2f for %s", pl.cost.list, ceil, pl.spec.GPU)
	}
	return "", ""
}

func checkMaxHourlyCost(c *checkCtx, pl *pool) (Reason, string) {
	if c.opt.MaxHourlyCost <= 0 {
		return "", ""
	}
	perHour := pl.cost.list * float64(c.w.NumNodes*c.opt.GPUsPerNode)
	if perHour > c.opt.MaxHourlyCost {
		return ReasonMaxHourlyCost, c.why("$%.2f/h is above max_hourly_cost $%.2f", perHour, c.opt.MaxHourlyCost)
	}
	return "", ""
}

func checkHealth(c *checkCtx, pl *pool) (Reason, string) {
	if pl.down {
		return ReasonUnhealthy, c.why("cluster %s pool %s is down", pl.cluster.Name, pl.spec.Name)
	}
	return "", ""
}

func checkGangSize(c *checkCtx, pl *pool) (Reason, string) {
	most := len(pl.free) + pl.grow
	if c.w.NumNodes > most {
		return ReasonNeverFits, c.why("gang of %d nodes; pool has at most %d", c.w.NumNodes, most)
	}
	return "", ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
