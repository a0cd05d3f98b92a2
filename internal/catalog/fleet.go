package catalog

import (
	"sort"

	"gpubroker/internal/model"
)

// providerDefaults are what Fleet assumes of each provider as a whole.
//
// EgressPerGB is the provider's published first-tier internet egress price
// (AWS $0.09/GB, Azure $0.087, GCP premium tier $0.12 to most of the world,
// OCI $0.0085 after the first 10 TB free; Lambda, CoreWeave and Nebius do
// not bill egress).
//
// SpotPreemptionPerHour is a planning assumption, not a measurement: GPU
// spot capacity is reclaimed far more often than the <5%-per-month AWS
// advertises for general instances, and 0.05 per node-hour (one
// interruption per ~20 hours) is a typical rate reported for large GPU spot
// instances. Providers that sell no spot get 0.
var providerDefaults = map[model.Provider]model.ProviderInfo{
	"aws":       {EgressPerGB: 0.09, SpotPreemptionPerHour: 0.05},
	"azure":     {EgressPerGB: 0.087, SpotPreemptionPerHour: 0.05},
	"gcp":       {EgressPerGB: 0.12, SpotPreemptionPerHour: 0.05},
	"oci":       {EgressPerGB: 0.0085},
	"lambda":    {EgressPerGB: 0},
	"coreweave": {EgressPerGB: 0},
	"nebius":    {EgressPerGB: 0, SpotPreemptionPerHour: 0.05},
}

// unknownProvider is assumed of a provider not in providerDefaults: the
// big clouds' egress price and the same spot risk, erring toward cost.
var unknownProvider = model.ProviderInfo{EgressPerGB: 0.09, SpotPreemptionPerHour: 0.05}

// ProviderInfo returns what the catalog assumes of provider p: typical
// internet egress price and spot preemption rate.
func ProviderInfo(p model.Provider) model.ProviderInfo {
	info, ok := providerDefaults[p]
	if !ok {
		info = unknownProvider
	}
	info.Name = p
	return info
}

// Fleet turns the catalog into a fleet that `gpubroker plan` can place
// against when the user has no fleet file: one cloud cluster per (provider,
// region) named "<provider>-<region>", one elastic pool per instance type
// (on-demand, named after the instance type) plus "<instance>-spot" where
// spot is sold. Pools start with 0 nodes and may grow to 4096, since cloud
// capacity is launched on demand. Where a region prices several zones the
// cheapest zone's offer is used. Offers with more GPUs than
// model.MaxGPUsPerNode, or that would not pass model validation, are left
// out. The policy is model.DefaultPolicy(). The result is deterministic and
// passes Fleet.Validate.
func (c *Catalog) Fleet() *model.Fleet {
	const maxNodes = 4096
	offers := append([]Offer(nil), c.Offers...)
	sort.SliceStable(offers, func(i, j int) bool { return offerLess(offers[i], offers[j]) })

	type key struct {
		p      model.Provider
		region string
	}
	var order []key
	clusters := map[key]*model.Cluster{}
	pools := map[key]map[string]bool{}
	for i, o := range offers {
		if i > 0 && sameShape(offers[i-1], o) {
			continue // a later zone of an instance type already handled
		}
		o = cheapestInRun(offers[i:])
		if o.GPUCount < 1 || o.GPUCount > model.MaxGPUsPerNode || o.OnDemand < 0 || o.Spot < 0 {
			continue
		}
		k := key{o.Provider, o.Region}
		cl, ok := clusters[k]
		if !ok {
			cl = &model.Cluster{Name: string(o.Provider) + "-" + o.Region, Provider: o.Provider, Region: o.Region, Backend: model.BackendCloud}
		}
		if pools[k] == nil {
			pools[k] = map[string]bool{}
		}
		if pools[k][o.InstanceType] {
			continue
		}
		base := model.Pool{
			Name: o.InstanceType, GPU: o.GPU, GPUsPerNode: o.GPUCount, PriceClass: model.OnDemand,
			PricePerGPUHour: o.OnDemand / float64(o.GPUCount), InstanceType: o.InstanceType,
			CPUsPerNode: o.VCPUs, MemoryGiBPerNode: o.MemoryGiB, MaxNodes: maxNodes,
		}
		candidates := []model.Pool{base}
		if o.Spot > 0 {
			spot := base
			spot.Name = o.InstanceType + "-spot"
			spot.PriceClass = model.Spot
			spot.PricePerGPUHour = o.Spot / float64(o.GPUCount)
			candidates = append(candidates, spot)
		}
		var added []model.Pool
		for _, p := range candidates {
			if p.Validate() == nil {
				added = append(added, p)
			}
		}
		if len(added) == 0 {
			continue
		}
		trial := *cl
		trial.Pools = append(append([]model.Pool(nil), cl.Pools...), added...)
		if trial.Validate() != nil {
			continue
		}
		pools[k][o.InstanceType] = true
		*cl = trial
		if !ok {
			clusters[k] = cl
			order = append(order, k)
		}
	}

	sort.Slice(order, func(i, j int) bool {
		if order[i].p != order[j].p {
			return order[i].p < order[j].p
		}
		return order[i].region < order[j].region
	})
	f := &model.Fleet{Policy: model.DefaultPolicy()}
	seen := map[model.Provider]bool{}
	names := map[string]bool{}
	for _, k := range order {
		cl := clusters[k]
		if names[cl.Name] {
			// "<p>-<r>" can collide only for odd region names; keep the first.
			continue
		}
		names[cl.Name] = true
		f.Clusters = append(f.Clusters, *cl)
		if !seen[k.p] {
			seen[k.p] = true
			f.Providers = append(f.Providers, ProviderInfo(k.p))
		}
	}
	return f
}

// sameShape reports whether a and b are the same instance type of the same
// provider in the same region (possibly different zones).
func sameShape(a, b Offer) bool {
	return a.Provider == b.Provider && a.InstanceType == b.InstanceType && a.Region == b.Region
}

// cheapestInRun returns the cheapest on-demand offer among the leading run
// of offers with the shape of run[0]; offers are sorted, so a shape's zones
// are adjacent. Ties keep the first (zone order).
func cheapestInRun(run []Offer) Offer {
	best := run[0]
	for _, x := range run[1:] {
		if !sameShape(run[0], x) {
			break
		}
		if x.OnDemand < best.OnDemand {
			best = x
		}
	}
	return best
}
