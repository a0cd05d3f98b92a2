package engine

import (
	"fmt"
	"math"

	"gpubroker/internal/model"
)

// The dynamic constraints: what depends on the round's state and on the
// cost of one placement, not on the pool alone (those are the static
// checkers in feasible.go, cached per class). A team's quota is checked
// once per resource option, before any pool (checkQuota); then every
// placement a search considers goes through placementChecks, in order.
// Admission (tryOption), preemption (tryPreempt) and Plan's explain mode
// all iterate this one list, so they agree on what blocks and on which
// reason a waiting workload reports. A new dynamic constraint is one entry
// here plus its Reason in types.go; tryOption decides what a block means
// for the rest of its search (a budget block skips one pool, a cap block
// rules out the provider).

// placement is one placement a search considers.
type placement struct {
	w    *model.Workload
	ts   *teamState // nil when the workload has no team state
	need int        // GPUs
	prov model.Provider
	cost Cost
}

// placementCheck is one dynamic constraint: blocked reports whether it
// rules the placement out and, if so, a detail a user can act on.
type placementCheck struct {
	reason  Reason
	blocked func(r *round, p placement) (bool, string)
}

var placementChecks = []placementCheck{
	{ReasonBudget, func(r *round, p placement) (bool, string) { return r.budgetBlocked(p.ts, p.w, p.need, p.cost) }},
	{ReasonProviderCap, func(r *round, p placement) (bool, string) { return r.capBlocked(p.prov, p.w, p.need) }},
}

// blocked is the first dynamic constraint that rules p out ("" when none).
func (r *round) blocked(p placement) (Reason, string) {
	for i := range placementChecks {
		if b, d := placementChecks[i].blocked(r, p); b {
			return placementChecks[i].reason, d
		}
	}
	return "", ""
}

// allBlocked is every dynamic constraint that rules p out, in order (for
// Plan, which explains every rejection).
func (r *round) allBlocked(p placement) []Rejection {
	var out []Rejection
	for i := range placementChecks {
		if b, d := placementChecks[i].blocked(r, p); b {
			out = append(out, Rejection{placementChecks[i].reason, d})
		}
	}
	return out
}

// capBlocked reports whether placing need GPUs on provider p for the
// workload's expected run would take p over the policy's share cap. Two
// views must both stay within it: the window around now (GPU-hours used
// so far plus what running work and this admission are expected to use)
// and the window ahead (what running work and this admission are expected
// to use), so that a trailing window, as it slides forward, keeps within
// the cap as far as what is known now can tell. Both are measured over at
// least the share floor.
func (r *round) capBlocked(p model.Provider, w *model.Workload, need int) (bool, string) {
	if r.pol.MaxProviderShare <= 0 {
		return false, ""
	}
	r.project()
	add := r.shareAdd(w, need)
	around := (r.provUsage[p] + r.future[p] + add) / math.Max(r.totalUsage+r.totalFuture+add, r.shareFloor)
	ahead := (r.future[p] + add) / math.Max(r.totalFuture+add, r.shareFloor)
	share := math.Max(around, ahead)
	if share > r.pol.MaxProviderShare+1e-12 {
		return true, fmt.Sprintf("%s would hold %.1f%% of GPU-hours in the %s window; the cap is %.0f%%", p, 100*share, r.pol.ShareWindow, 100*r.pol.MaxProviderShare)
	}
	return false, ""
}

func (r *round) shareAdd(w *model.Workload, need int) float64 {
	return float64(need) * r.pol.WindowHours(hours(w))
}

// budgetBlocked reports whether the placement's expected cost would take
// the team over its monthly budget.
func (r *round) budgetBlocked(ts *teamState, w *model.Workload, need int, c Cost) (bool, string) {
	if ts == nil || ts.team.MonthlyBudgetUSD <= 0 {
		return false, ""
	}
	expect := c.BilledPerGPUHour * float64(need) * hours(w)
	if ts.spend+expect > ts.team.MonthlyBudgetUSD {
		return true, fmt.Sprintf("team %s has spent $%.0f of its $%.0f monthly budget; this run would cost about $%.0f", ts.team.Name, ts.spend, ts.team.MonthlyBudgetUSD, expect)
	}
	return false, ""
}
