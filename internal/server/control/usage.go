package control

import (
	"context"
	"sync"
	"time"

	"gpubroker/internal/ledger"
	"gpubroker/internal/model"
	"gpubroker/internal/server/view"
	"gpubroker/internal/store"
)

// usageTotals caches the usage figures the engine needs, read from the
// store every usageRefresh (and at a month's turn); in between, what this
// server records is added as it goes. Safe for concurrent use (the API's
// cancel records usage too).
type usageTotals struct {
	mu   sync.Mutex
	read time.Time // when the base figures were read; zero: never
	// window is the share window the base was read for.
	window time.Duration
	base   usageSnapshot
}

// usageSnapshot is the usage figures of one round: provider GPU-hours
// over the share window, team spend this month, contract spend
// (ledger.Totals), and what the attempts still running have used so far.
type usageSnapshot struct {
	ledger.Totals
	running []store.Usage
}

func newUsageSnapshot() usageSnapshot { return usageSnapshot{Totals: ledger.NewTotals()} }

func (u usageSnapshot) clone() usageSnapshot { return usageSnapshot{Totals: u.Totals.Clone()} }

// add books one record into u as of now, by the one rule
// (ledger.Totals.Book): the part inside the share window, the part in this
// month, all of it for its contract.
func (u *usageSnapshot) add(r store.Usage, now, windowStart time.Time) {
	u.Book(ledger.Use{Provider: r.Provider, Team: r.Team, Contract: r.Contract, GPUs: r.GPUs, Start: r.Start, End: r.End, CostUSD: r.CostUSD}, now, windowStart)
}

// usageTotals returns this round's figures: the cached base plus what the
// holding jobs have run so far.
func (s *Controller) usageTotals(ctx context.Context, fs *view.Fleet, holding []*store.Job, now time.Time) usageSnapshot {
	ut := &s.rec.usage
	window := fs.Fleet.Policy.Window()
	ut.mu.Lock()
	stale := ut.read.IsZero() || now.Sub(ut.read) >= usageRefresh || now.Before(ut.read) ||
		!model.MonthStart(now).Equal(model.MonthStart(ut.read)) || ut.window != window
	ut.mu.Unlock()
	if stale {
		from := now.Add(-window)
		if m := model.MonthStart(now); m.Before(from) {
			from = m
		}
		for _, c := range fs.Fleet.Contracts {
			if c.Start.Before(from) {
				from = c.Start
			}
		}
		recs, err := s.store.ListUsage(ctx, from, now.Add(time.Nanosecond))
		if err != nil {
			s.log.Warn("reading usage; using the previous figures", "err", err)
		} else {
			base := newUsageSnapshot()
			for _, r := range recs {
				base.add(r, now, now.Add(-window))
			}
			ut.mu.Lock()
			ut.base, ut.read, ut.window = base, now, window
			ut.mu.Unlock()
		}
	}
	ut.mu.Lock()
	out := ut.base.clone()
	ut.mu.Unlock()
	for _, j := range holding {
		if r, ok := usageOf(j, now); ok {
			out.add(r, now, now.Add(-window))
			out.running = append(out.running, r)
		}
	}
	return out
}

// usageOf is what j's current attempt has used from its start to end.
// Only a Running job's StartedAt is its current attempt's (the store keeps
// the previous attempt's start until the new one runs); an attempt that
// never ran used nothing.
func usageOf(j *store.Job, end time.Time) (store.Usage, bool) {
	p := j.Placement
	if p == nil || j.State != store.Running || j.StartedAt.IsZero() || !end.After(j.StartedAt) {
		return store.Usage{}, false
	}
	gpus := len(p.Nodes) * p.GPUsPerNode
	return store.Usage{
		JobID: j.ID, Attempt: j.Attempt, Team: j.Team, Provider: p.Provider, Cluster: p.Cluster, Pool: p.Pool,
		PriceClass: p.PriceClass, Contract: p.Contract, GPUs: gpus, Start: j.StartedAt, End: end,
		CostUSD: end.Sub(j.StartedAt).Hours() * float64(gpus) * p.BilledPerGPUHour,
	}, true
}

// attemptUsage is what j's attempt (as j was before it ended) used up to
// end, for the move that ends it to store (store.Move.Usage): from start
// as its backend saw it when known (zero: the store's StartedAt).
func attemptUsage(j *store.Job, start, end time.Time) *store.Usage {
	if !start.IsZero() && j.State == store.Running {
		cp := *j
		cp.StartedAt = start
		j = &cp
	}
	r, ok := usageOf(j, end)
	if !ok {
		return nil
	}
	return &r
}

// noteUsage adds r, stored with the move that ended its attempt at end,
// to the cached totals (nil: nothing).
func (s *Controller) noteUsage(r *store.Usage, end time.Time) {
	if r == nil {
		return
	}
	ut := &s.rec.usage
	ut.mu.Lock()
	defer ut.mu.Unlock()
	if !ut.read.IsZero() {
		ut.base.add(*r, end, end.Add(-ut.window))
	}
}
