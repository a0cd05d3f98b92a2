package sim

import (
	"maps"
	"slices"
	"time"

	"gpubroker/internal/engine"
	"gpubroker/internal/model"
)

// scheduler is the one place the simulator meets the engine. liveScheduler
// keeps an engine.Scheduler across rounds (fast); freshScheduler runs
// engine.Schedule over a snapshot the simulator rebuilds (the reference the
// fast path is tested against).
type scheduler interface {
	Schedule(pending []*model.Workload, now time.Time) engine.Decisions
	// Admitted is told every admission after the simulator applied it.
	Admitted(a engine.Allocation)
	// Release ends a running allocation the engine did not preempt
	// (completion, spot preemption, outage).
	Release(workload string)
	// Preempted is told every preemption the engine decided, once applied.
	Preempted(workload string)
	SetPoolDown(ref engine.PoolRef, down bool)
	SetUsage(providerGPUHours map[model.Provider]float64, teamSpendUSD map[string]float64)
	Reprice(now time.Time, contractSpentUSD map[string]float64)
}

type liveScheduler struct{ s *engine.Scheduler }

func (l *liveScheduler) Schedule(p []*model.Workload, now time.Time) engine.Decisions {
	return l.s.Schedule(p, now)
}
func (l *liveScheduler) Admitted(engine.Allocation) {} // it applied its own decision
func (l *liveScheduler) Release(w string)           { l.s.Release(w) }
func (l *liveScheduler) Preempted(string)           {} // it dropped the victim itself
func (l *liveScheduler) SetPoolDown(ref engine.PoolRef, down bool) {
	l.s.SetPoolDown(ref, down)
}
func (l *liveScheduler) SetUsage(p map[model.Provider]float64, t map[string]float64) {
	l.s.SetUsage(p, t)
}
func (l *liveScheduler) Reprice(now time.Time, c map[string]float64) { l.s.Reprice(now, c) }

// freshScheduler shares the simulator's pool states (NodeFree, Down) and
// keeps the running list itself.
type freshScheduler struct {
	snap *engine.Snapshot
	pol  model.Policy
	// repriced is the time contract terms and plans are priced at, as the
	// live scheduler prices them between Reprice calls.
	repriced time.Time
}

func (f *freshScheduler) Schedule(p []*model.Workload, now time.Time) engine.Decisions {
	return engine.Schedule(f.snap, p, f.pol, now)
}
func (f *freshScheduler) Admitted(a engine.Allocation) { f.snap.Running = append(f.snap.Running, a) }
func (f *freshScheduler) Release(w string) {
	f.snap.Running = slices.DeleteFunc(f.snap.Running, func(a engine.Allocation) bool { return a.Workload == w })
}
func (f *freshScheduler) Preempted(w string)               { f.Release(w) }
func (f *freshScheduler) SetPoolDown(engine.PoolRef, bool) {} // shared PoolState.Down
func (f *freshScheduler) SetUsage(p map[model.Provider]float64, t map[string]float64) {
	f.snap.ProviderGPUHours = p
	f.snap.TeamSpendUSD = maps.Clone(t)
}
func (f *freshScheduler) Reprice(now time.Time, c map[string]float64) {
	f.snap.ContractSpentUSD = maps.Clone(c)
	f.repriced = now
}
