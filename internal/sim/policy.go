package sim

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"gpubroker/internal/model"
)

// ErrUnknownPolicy is wrapped by ApplyPolicy for a name it does not know.
var ErrUnknownPolicy = errors.New("unknown policy")

// PolicyNames lists the policy forms ApplyPolicy takes, for help texts.
var PolicyNames = []string{"gpubroker", "single:PROVIDER", "cheapest", "fifo"}

// Variant is one policy applied to a fleet: what the engine schedules on
// (Fleet, Policy) and what the ledger prices by (Billing). They differ for
// "cheapest", whose scheduler ignores commitments that are still paid.
type Variant struct {
	Name    string
	Fleet   *model.Fleet
	Billing *model.Fleet
	Policy  model.Policy
}

// ApplyPolicy turns a fleet and a policy name into what to simulate:
//
//   - gpubroker: the fleet and its policy as configured.
//   - fifo: the same, with fair share between teams off (FIFO by priority
//     then arrival).
//   - cheapest: a plain multi-cloud optimiser: the engine sees no contracts
//     and no commitments (committed and reserved pools as on-demand at list)
//     and no provider share cap, so it picks the cheapest feasible list
//     price. The ledger still bills the real fleet: commitments signed are
//     paid whether this policy uses them or not.
//   - single:PROVIDER: a world with one provider, bought on demand: only
//     that provider's clusters, committed and reserved pools on demand at
//     list, no contracts, no share cap. Scheduling and billing both use it.
//
// The input fleet is not modified.
func ApplyPolicy(f *model.Fleet, name string) (Variant, error) {
	switch {
	case name == "gpubroker":
		return Variant{Name: name, Fleet: f, Billing: f, Policy: f.Policy}, nil
	case name == "fifo":
		pol := f.Policy
		pol.FairShare = false
		return Variant{Name: name, Fleet: f, Billing: f, Policy: pol}, nil
	case name == "cheapest":
		g := onDemand(f, func(model.Provider) bool { return true })
		pol := g.Policy
		pol.MaxProviderShare = 0
		g.Policy = pol
		return Variant{Name: name, Fleet: g, Billing: f, Policy: pol}, nil
	case strings.HasPrefix(name, "single:"):
		p := model.Provider(strings.ToLower(strings.TrimPrefix(name, "single:")))
		var have []string
		for _, c := range f.Clusters {
			if !slices.Contains(have, string(c.Provider)) {
				have = append(have, string(c.Provider))
			}
		}
		slices.Sort(have)
		if !slices.Contains(have, string(p)) {
			return Variant{}, fmt.Errorf("policy %q: %w: the fleet has no cluster on provider %q; use one of %s", name, ErrUnknownPolicy, p, strings.Join(have, ", "))
		}
		g := onDemand(f, func(q model.Provider) bool { return q == p })
		pol := g.Policy
		pol.MaxProviderShare = 0
		g.Policy = pol
		return Variant{Name: name, Fleet: g, Billing: g, Policy: pol}, nil
	}
	return Variant{}, fmt.Errorf("policy %q: %w; use one of %s", name, ErrUnknownPolicy, strings.Join(PolicyNames, ", "))
}

// onDemand copies f keeping the clusters of providers keep accepts, with
// committed and reserved pools on demand at list and no contracts.
func onDemand(f *model.Fleet, keep func(model.Provider) bool) *model.Fleet {
	g := *f
	g.Contracts = nil
	g.Clusters = nil
	for _, c := range f.Clusters {
		if !keep(c.Provider) {
			continue
		}
		c.Pools = slices.Clone(c.Pools)
		for i := range c.Pools {
			p := &c.Pools[i]
			p.Contract = ""
			if p.PriceClass == model.Committed || p.PriceClass == model.Reserved {
				p.PriceClass = model.OnDemand
			}
		}
		g.Clusters = append(g.Clusters, c)
	}
	return &g
}
