package engine

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"gpubroker/internal/model"
)

// applyToSnapshot is what a caller of the pure Schedule does between rounds:
// evict the preempted, take the admitted nodes, then end the released work.
func applyToSnapshot(t *testing.T, snap *Snapshot, pending []*model.Workload, d Decisions, now time.Time, release []string) *Snapshot {
	t.Helper()
	next := &Snapshot{Fleet: snap.Fleet, ProviderGPUHours: snap.ProviderGPUHours, ContractSpentUSD: snap.ContractSpentUSD, TeamSpendUSD: snap.TeamSpendUSD}
	free := map[PoolRef][]int{}
	for _, ps := range snap.Pools {
		free[ps.Ref] = append([]int(nil), ps.NodeFree...)
	}
	for _, cl := range snap.Fleet.Clusters {
		for _, p := range cl.Pools {
			ref := PoolRef{cl.Name, p.Name}
			if free[ref] == nil {
				f := make([]int, p.Nodes)
				for i := range f {
					f[i] = p.GPUsPerNode
				}
				free[ref] = f
			}
		}
	}
	running := map[string]Allocation{}
	var order []string
	for _, a := range snap.Running {
		running[a.Workload] = a
		order = append(order, a.Workload)
	}
	gone := map[string]bool{}
	for _, p := range d.Preempt {
		gone[p.Workload] = true
	}
	for _, id := range release {
		gone[id] = true
	}
	byID := map[string]*model.Workload{}
	for _, w := range pending {
		byID[w.ID] = w
	}
	for _, a := range d.Admit {
		w := byID[a.Workload]
		for _, n := range a.Nodes {
			for len(free[a.Pool]) <= n {
				free[a.Pool] = append(free[a.Pool], 0) // a node the elastic pool added
			}
		}
		running[a.Workload] = Allocation{Workload: a.Workload, Team: w.Team, Priority: w.Priority, Pool: a.Pool, Nodes: a.Nodes,
			GPUsPerNode: a.GPUsPerNode, GPU: a.GPU, Borrowed: a.Borrowed, Started: now, CheckpointInterval: w.CheckpointInterval}
		order = append(order, a.Workload)
	}
	// Recompute free from the pool's shape and what still runs.
	for ref, f := range free {
		gpn := 0
		for _, cl := range snap.Fleet.Clusters {
			for _, p := range cl.Pools {
				if (PoolRef{cl.Name, p.Name}) == ref {
					gpn = p.GPUsPerNode
				}
			}
		}
		for i := range f {
			f[i] = gpn
		}
	}
	for _, id := range order {
		a, ok := running[id]
		if !ok || gone[id] {
			continue
		}
		for _, n := range a.Nodes {
			free[a.Pool][n] -= a.GPUsPerNode
		}
		next.Running = append(next.Running, a)
		delete(running, id)
	}
	for _, cl := range snap.Fleet.Clusters {
		for _, p := range cl.Pools {
			ref := PoolRef{cl.Name, p.Name}
			next.Pools = append(next.Pools, PoolState{Ref: ref, NodeFree: free[ref]})
		}
	}
	return next
}

// TestSchedulerMatchesSchedule: a Scheduler carried over rounds decides
// exactly what the pure Schedule decides from a snapshot of the same state.
func TestSchedulerMatchesSchedule(t *testing.T) {
	snap, pending, pol, now := benchWorld(40, 4000)
	first, second := pending[:2500], pending[2500:]

	s := NewScheduler(snap, pol, now)
	d1 := s.Schedule(first, now)
	want1 := Schedule(snap, first, pol, now)
	if diff := cmp.Diff(want1, d1); diff != "" {
		t.Fatalf("first round differs (-Schedule +Scheduler):\n%s", diff)
	}
	if len(d1.Admit) == 0 || len(d1.Preempt) == 0 {
		t.Fatalf("the world should admit and preempt in round one: %d admitted, %d preempted", len(d1.Admit), len(d1.Preempt))
	}
	var release []string
	for i, a := range d1.Admit {
		if i%3 == 0 {
			release = append(release, a.Workload)
			if !s.Release(a.Workload) {
				t.Fatalf("Release(%s) = false for admitted work", a.Workload)
			}
		}
	}
	if s.Release("no-such-workload") {
		t.Fatal("Release of unknown work reported true")
	}
	later := now.Add(time.Hour)
	d2 := s.Schedule(second, later)
	snap2 := applyToSnapshot(t, snap, first, d1, now, release)
	want2 := Schedule(snap2, second, pol, later)
	j1, _ := json.Marshal(want2)
	j2, _ := json.Marshal(d2)
	if string(j1) != string(j2) {
		t.Fatalf("second round differs (-Schedule +Scheduler):\n%s", cmp.Diff(want2, d2))
	}
	if len(d2.Admit) == 0 {
		t.Fatal("second round admitted nothing; the test world is too full to tell")
	}
}
