package model

import "time"

// DefaultShareWindow is the provider-share window of a policy that gives
// none: the window usage, the dashboard and the engine's cap count over.
const DefaultShareWindow = 30 * 24 * time.Hour

// Window is the policy's provider-share window: ShareWindow, or
// DefaultShareWindow when unset. Every reader of the window (the engine's
// cap, the server's usage totals, the dashboard, the simulator) uses it.
func (p Policy) Window() time.Duration {
	if p.ShareWindow > 0 {
		return p.ShareWindow
	}
	return DefaultShareWindow
}

// WindowHours is how many of a run's hours the share window can hold: h,
// at most the window's length.
func (p Policy) WindowHours(h float64) float64 {
	return min(h, p.Window().Hours())
}

// ShareFloor is the smallest denominator a provider's share of GPU-hours
// is computed over: ShareFloorGPUHours, or a day of the fleet's whole
// capacity (see Fleet.CapacityGPUs) when unset.
func (p Policy) ShareFloor(f *Fleet) float64 {
	if p.ShareFloorGPUHours > 0 {
		return p.ShareFloorGPUHours
	}
	return float64(f.CapacityGPUs()) * 24
}

// CapacityGPUs is the fleet's GPUs with every elastic pool at its largest.
func (f *Fleet) CapacityGPUs() int {
	n := 0
	for ci := range f.Clusters {
		for pi := range f.Clusters[ci].Pools {
			p := &f.Clusters[ci].Pools[pi]
			if p.GPUsPerNode > 0 {
				n += p.GPUsPerNode * max(p.Nodes, p.MaxNodes, 0)
			}
		}
	}
	return n
}

// MonthStart is the start (UTC) of the calendar month t is in: team
// budgets are monthly, in UTC.
func MonthStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// MaxPriority is the highest priority a member of team may submit with, and
// whether there is one: the team's max_priority, else the policy's. Admins
// are not held to it.
func (f *Fleet) MaxPriority(team string) (int, bool) {
	if t, ok := f.Team(team); ok && t.MaxPriority != nil {
		return *t.MaxPriority, true
	}
	if f.Policy.MaxPriority != nil {
		return *f.Policy.MaxPriority, true
	}
	return 0, false
}
