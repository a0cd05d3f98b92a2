package ledger

import (
	"time"

	"gpubroker/internal/model"
)

// Use is one attempt's usage as the totals count it: GPUs held over
// [Start, End), costing CostUSD (nothing on take-or-pay capacity).
type Use struct {
	Provider model.Provider
	Team     string
	Contract string // "" for none
	GPUs     int
	Start    time.Time
	End      time.Time
	CostUSD  float64
}

// Totals are the usage figures a scheduling round is given: GPU-hours per
// provider over the share window (for the provider cap), spend per team in
// the current calendar month, UTC (for budgets), and spend per contract
// since it began (for burn-down and the shadow discount). The server books
// its usage records and running attempts with Book each round.
type Totals struct {
	ProviderGPUHours map[model.Provider]float64
	TeamSpendUSD     map[string]float64
	ContractSpendUSD map[string]float64
}

// NewTotals is empty totals.
func NewTotals() Totals {
	return Totals{ProviderGPUHours: map[model.Provider]float64{}, TeamSpendUSD: map[string]float64{}, ContractSpendUSD: map[string]float64{}}
}

// Clone is a copy that Book on either leaves the other alone.
func (t Totals) Clone() Totals {
	c := NewTotals()
	for k, v := range t.ProviderGPUHours {
		c.ProviderGPUHours[k] = v
	}
	for k, v := range t.TeamSpendUSD {
		c.TeamSpendUSD[k] = v
	}
	for k, v := range t.ContractSpendUSD {
		c.ContractSpendUSD[k] = v
	}
	return c
}

// Book adds u as counted at now, with the share window starting at
// windowStart: the part of its GPU-hours from windowStart on, the part of
// its cost in now's calendar month (pro rata by time), and all of its cost
// toward its contract. A use with no GPUs or no duration counts nothing.
func (t Totals) Book(u Use, now, windowStart time.Time) {
	if u.GPUs <= 0 || !u.End.After(u.Start) {
		return
	}
	total := u.End.Sub(u.Start)
	part := func(from time.Time) float64 {
		s := u.Start
		if from.After(s) {
			s = from
		}
		if !u.End.After(s) {
			return 0
		}
		return float64(u.End.Sub(s)) / float64(total)
	}
	hours := total.Hours() * float64(u.GPUs)
	t.ProviderGPUHours[u.Provider] += hours * part(windowStart)
	t.TeamSpendUSD[u.Team] += u.CostUSD * part(model.MonthStart(now))
	if u.Contract != "" {
		t.ContractSpendUSD[u.Contract] += u.CostUSD
	}
}
