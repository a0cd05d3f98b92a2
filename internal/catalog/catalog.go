package catalog

import (
	"fmt"
	"sort"
	"strings"

	"gpubroker/internal/model"
)

// Offer is one instance type sold by one provider in one region (and zone,
// when the provider prices by zone). Prices are list USD per hour for the
// whole instance.
type Offer struct {
	Provider     model.Provider
	InstanceType string
	GPU          model.GPUModel
	GPUCount     int
	// GPUMemoryGiB is the memory of one GPU (not of the instance).
	GPUMemoryGiB int
	VCPUs        float64
	MemoryGiB    float64
	// Interconnect describes how the GPUs and nodes are linked, in the
	// provider's words (e.g. "NVLink; EFA 3200 Gbps"); empty when unknown.
	Interconnect string
	Region       string
	Zone         string
	OnDemand     float64
	// Spot is the spot (preemptible) price; 0 means no spot is sold.
	Spot float64
}

// PricePerGPUHour returns the on-demand price of one GPU for one hour.
func (o Offer) PricePerGPUHour() float64 {
	if o.GPUCount <= 0 {
		return 0
	}
	return o.OnDemand / float64(o.GPUCount)
}

// SkippedRow records an input row a loader did not turn into an offer and
// why, so that nothing is dropped silently.
type SkippedRow struct {
	Provider     model.Provider
	Line         int
	InstanceType string
	Accelerator  string
	Reason       string
}

// Catalog is a set of offers in a deterministic order: provider, instance
// type, region, zone, then price. Build one with Builtin or a loader; after
// changing Offers by hand call Sort.
type Catalog struct {
	Offers []Offer
	// Skipped lists the rows loaders left out, in input order.
	Skipped []SkippedRow
}

// Sort puts the offers in the catalog's canonical order.
func (c *Catalog) Sort() {
	sort.SliceStable(c.Offers, func(i, j int) bool { return offerLess(c.Offers[i], c.Offers[j]) })
}

func offerLess(a, b Offer) bool {
	switch {
	case a.Provider != b.Provider:
		return a.Provider < b.Provider
	case a.InstanceType != b.InstanceType:
		return a.InstanceType < b.InstanceType
	case a.Region != b.Region:
		return a.Region < b.Region
	case a.Zone != b.Zone:
		return a.Zone < b.Zone
	case a.OnDemand != b.OnDemand:
		return a.OnDemand < b.OnDemand
	default:
		return a.Spot < b.Spot
	}
}

// Lookup finds provider's instanceType in region. With region "" it returns
// the region with the lowest on-demand price (ties: the first region by
// name). Where a region has several zones the cheapest zone is returned.
// Instance types match exactly, or else case-insensitively.
func (c *Catalog) Lookup(provider model.Provider, instanceType, region string) (Offer, bool) {
	var best Offer
	found := false
	for _, exact := range []bool{true, false} {
		for _, o := range c.Offers {
			if o.Provider != provider || (region != "" && o.Region != region) {
				continue
			}
			if exact && o.InstanceType != instanceType {
				continue
			}
			if !exact && !strings.EqualFold(o.InstanceType, instanceType) {
				continue
			}
			if !found || o.OnDemand < best.OnDemand {
				best, found = o, true
			}
		}
		if found {
			return best, true
		}
	}
	return Offer{}, false
}

// ByGPU returns every offer of GPU model g, in catalog order.
func (c *Catalog) ByGPU(g model.GPUModel) []Offer {
	var out []Offer
	for _, o := range c.Offers {
		if o.GPU == g {
			out = append(out, o)
		}
	}
	return out
}

// Providers returns the providers the catalog covers (those with offers or
// skipped rows), sorted.
func (c *Catalog) Providers() []model.Provider {
	seen := map[model.Provider]bool{}
	for _, o := range c.Offers {
		seen[o.Provider] = true
	}
	for _, s := range c.Skipped {
		seen[s.Provider] = true
	}
	out := make([]model.Provider, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Merge replaces c's offers of every provider other covers with other's
// offers of it, keeps c's offers of the other providers, and appends other's
// skipped rows. It is how a fresh price list for one provider overrides the
// built-in one.
func (c *Catalog) Merge(other *Catalog) {
	if other == nil {
		return
	}
	covered := map[model.Provider]bool{}
	for _, p := range other.Providers() {
		covered[p] = true
	}
	kept := make([]Offer, 0, len(c.Offers)+len(other.Offers))
	for _, o := range c.Offers {
		if !covered[o.Provider] {
			kept = append(kept, o)
		}
	}
	kept = append(kept, other.Offers...)
	c.Offers = kept
	c.Skipped = append(c.Skipped, other.Skipped...)
	c.Sort()
}

// ParseError says a catalog row could not be read. Line is the 1-based line
// of the input; Column is the header name of the bad field, if any.
type ParseError struct {
	Line   int
	Column string
	Msg    string
}

func (e *ParseError) Error() string {
	if e.Column != "" {
		return fmt.Sprintf("line %d: column %s: %s", e.Line, e.Column, e.Msg)
	}
	return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
}
