package control

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"gpubroker/internal/backend"
	"gpubroker/internal/engine"
	"gpubroker/internal/lifecycle"
	"gpubroker/internal/model"
	"gpubroker/internal/server/view"
	"gpubroker/internal/store"
)

// holds reports whether j holds capacity (a placement of its current
// attempt).
func holds(j *store.Job) bool {
	return j.Placement != nil && (j.State == store.Admitted || j.State == store.Dispatched || j.State == store.Running)
}

// snapshot builds the engine's view from the round's jobs: allocations
// for jobs holding capacity, per-node free GPUs (of view), down pools,
// usage.
func (rd *round) snapshot(t usageSnapshot, sv snapView) (*engine.Snapshot, []*model.Workload) {
	snap := buildSnapshot(rd.fs.Fleet, rd.holding(), rd.obs, t, sv)
	var pending []*model.Workload
	for _, id := range rd.order {
		j := rd.jobs[id]
		if j == nil || j.State != store.Pending || j.Workload == nil {
			continue
		}
		if _, held := rd.held[id]; held {
			continue
		}
		w := j.Workload
		w.ID = strconv.FormatInt(j.ID, 10)
		w.Team = j.Team
		w.Submitted = j.Created
		if av, ok := rd.s.rec.avoid[id]; ok {
			if av.attempt == j.Attempt {
				c := *w
				c.AvoidRegions = []string{av.region}
				w = &c
			} else {
				delete(rd.s.rec.avoid, id)
			}
		}
		pending = append(pending, w)
	}
	return snap, pending
}

// holding is every job holding capacity: the round's own, and those whose
// moves conflicted (conflicted).
func (rd *round) holding() []*store.Job {
	out := slices.Clone(rd.conflicted)
	for _, id := range rd.order {
		if j := rd.jobs[id]; j != nil && holds(j) {
			out = append(out, j)
		}
	}
	return out
}

// snapView says which nodes of a pool buildSnapshot shows free.
type snapView int

const (
	// realNodes: every pool's nodes, less what holds them.
	realNodes snapView = iota
	// queueSlots: the queue-ahead pass's view (ADR 0003). A pool of a
	// cluster with queue_ahead shows its queue slots as nodes after every
	// node it has or may add (slotBase), free but for work queued on them,
	// and its real nodes as full; every other pool is down.
	queueSlots
)

func buildSnapshot(f *model.Fleet, holding []*store.Job, obs map[string]*observation, t usageSnapshot, sv snapView) *engine.Snapshot {
	snap := &engine.Snapshot{
		Fleet:            f,
		ProviderGPUHours: t.ProviderGPUHours,
		TeamSpendUSD:     t.TeamSpendUSD,
		ContractSpentUSD: t.ContractSpendUSD,
	}
	free := map[engine.PoolRef][]int{}
	for _, c := range f.Clusters {
		down := obs != nil && !obs[c.Name].open()
		for _, p := range c.Pools {
			ref := engine.PoolRef{Cluster: c.Name, Pool: p.Name}
			from, n, poolDown := 0, p.Nodes, down
			if sv == queueSlots {
				k := c.AheadNodes(&p)
				from, n, poolDown = view.SlotBase(&p), view.SlotBase(&p)+k, down || k == 0
			}
			nf := make([]int, n)
			for i := from; i < n; i++ {
				nf[i] = p.GPUsPerNode
			}
			free[ref] = nf
			snap.Pools = append(snap.Pools, engine.PoolState{Ref: ref, NodeFree: nf, Down: poolDown})
		}
	}
	for _, j := range holding {
		pl := j.Placement
		ref := engine.PoolRef{Cluster: pl.Cluster, Pool: pl.Pool}
		if nf := free[ref]; nf != nil {
			for _, n := range pl.Nodes {
				if n >= 0 && n < len(nf) {
					nf[n] = max(0, nf[n]-pl.GPUsPerNode)
				}
			}
		}
		a := engine.Allocation{
			Workload: strconv.FormatInt(j.ID, 10), Team: j.Team, Pool: ref, Nodes: pl.Nodes,
			GPUsPerNode: pl.GPUsPerNode, GPU: pl.GPU, Borrowed: pl.Borrowed, Started: j.Updated,
		}
		a.Ahead = view.QueuedAhead(f, pl)
		if j.State == store.Running && !j.StartedAt.IsZero() {
			a.Started = j.StartedAt
		}
		if j.Workload != nil {
			a.Priority = j.Workload.Priority
			a.CheckpointInterval = j.Workload.CheckpointInterval
			if j.Workload.Duration > 0 {
				// The share cap counts what running work is still expected
				// to use; without an estimate the engine assumes an hour.
				a.ExpectedEnd = a.Started.Add(j.Workload.Duration)
			}
		}
		snap.Running = append(snap.Running, a)
	}
	return snap
}

// preempt evicts the engine's victims: stop the attempt, then move it back
// to pending as a new attempt. It returns the workloads whose room could
// not be made (their admissions are skipped this round).
//
// On a queue_ahead cluster the engine, not the broker, gives the freed
// node to the highest priority it has queued, so a victim is stopped only
// once the job it makes room for has reached the engine (stopAfter, see
// record): stopped first, its node would go to work queued ahead. The
// victim is moved at once all the same; until it is stopped, its attempt
// is an orphan that cleanOrphans leaves alone for deferStop.
func (rd *round) preempt(ctx context.Context, ps []engine.Preemption) map[string]bool {
	blocked := map[string]bool{}
	for _, p := range ps {
		id, _ := strconv.ParseInt(p.Workload, 10, 64)
		j := rd.jobs[id]
		if j == nil || !holds(j) {
			blocked[p.For] = true
			continue
		}
		name := attemptName(j)
		if o := rd.obs[j.Placement.Cluster]; o.ok() && j.State != store.Admitted {
			if c := rd.fs.Fleet.Cluster(j.Placement.Cluster); c != nil && c.QueuesAhead() {
				forID, _ := strconv.ParseInt(p.For, 10, 64)
				d := rd.s.rec.stopAfter[forID]
				d.b, d.names, d.until = o.b, append(d.names, name), rd.now.Add(deferStop)
				rd.s.rec.stopAfter[forID] = d
				rd.s.rec.deferred[name] = true
			} else if err := rd.s.within(ctx, "cancel", func(ctx context.Context) error { return o.b.Cancel(ctx, name) }); err != nil {
				rd.s.log.Warn("preempt: cancel failed", "name", name, "err", err)
			}
		}
		rd.retry(j, lifecycle.Preempted, "Preempted: "+p.Reason, "for job "+p.For, func(moved *store.Job) {
			if moved == nil {
				blocked[p.For] = true
				delete(rd.s.rec.deferred, name) // still the job's attempt: never stop it
			}
		})
	}
	rd.flush(ctx)
	for forID, d := range rd.s.rec.stopAfter {
		if blocked[strconv.FormatInt(forID, 10)] || !rd.now.Before(d.until) {
			// No Submit will come, or it has taken too long.
			rd.stopDeferred(ctx, forID)
		}
	}
	return blocked
}

// deferredStop is the victims preempted for one job on a queue_ahead
// cluster, waiting for its Submit (see preempt).
type deferredStop struct {
	b     backend.Backend
	names []string
	until time.Time
}

// deferStop bounds how long a victim on a queue_ahead cluster runs on
// while the job it made room for has not reached the engine.
const deferStop = 30 * time.Second

// stopDeferred stops the victims preempted for job forID (see preempt)
// that are still waiting for it.
func (rd *round) stopDeferred(ctx context.Context, forID int64) {
	d, ok := rd.s.rec.stopAfter[forID]
	if !ok {
		return
	}
	delete(rd.s.rec.stopAfter, forID)
	for _, name := range d.names {
		if !rd.s.rec.deferred[name] {
			continue
		}
		delete(rd.s.rec.deferred, name)
		if err := rd.s.within(ctx, "cancel", func(ctx context.Context) error { return d.b.Cancel(ctx, name) }); err != nil {
			rd.s.log.Warn("preempt: cancel failed", "name", name, "err", err)
		}
	}
}

// admitBatch is how many admissions a round writes in one transaction
// before their Submits start: enough that the writes cost little, few
// enough that the engine gets the first ones at once.
const admitBatch = 64

// aheadNote ends the message of an admission onto a queue slot.
const aheadNote = "; queued in the engine ahead of capacity (queue_ahead)"

// admitAhead is the queue-ahead pass (ADR 0003): once the round's own
// admissions are recorded, the engine schedules the single-node jobs still
// pending again, on a view where only the queue slots of clusters with
// queue_ahead are free, without preemption. What it admits is dispatched
// like any admission and waits in the engine's queue, which starts it the
// moment capacity frees instead of a round later. Quotas, budgets, the
// share cap, prices and residency hold as for any admission: the engine
// counts work on slots as running.
func (rd *round) admitAhead(ctx context.Context, t usageSnapshot, disp *roundDispatch) {
	if !slices.ContainsFunc(rd.fs.Fleet.Clusters, func(c model.Cluster) bool { return c.QueuesAhead() }) {
		return
	}
	snap, pending := rd.snapshot(t, queueSlots)
	if as := scheduleAhead(rd.fs.Fleet, snap, pending, rd.now); len(as) > 0 {
		rd.admit(ctx, as, nil, disp, aheadNote)
	}
}

// scheduleAhead is the engine's queue-ahead pass over snap (buildSnapshot's
// queueSlots view) for the pending single-node workloads. Gangs never go ahead: kube-scheduler does not place an
// Indexed Job's pods all or nothing, so two gangs queued in the engine
// could each hold part of the nodes the other needs.
func scheduleAhead(f *model.Fleet, snap *engine.Snapshot, pending []*model.Workload, now time.Time) []engine.Admission {
	var single []*model.Workload
	for _, w := range pending {
		if w.NumNodes <= 1 {
			single = append(single, w)
		}
	}
	if len(single) == 0 || !slotFree(snap) {
		return nil
	}
	pol := f.Policy
	pol.Preemption = false
	return engine.Schedule(snap, single, pol, now).Admit
}

// slotFree reports whether a pool that is up has a free node.
func slotFree(snap *engine.Snapshot) bool {
	for _, st := range snap.Pools {
		if !st.Down && slices.ContainsFunc(st.NodeFree, func(f int) bool { return f > 0 }) {
			return true
		}
	}
	return false
}

// admit records the engine's admissions: Pending -> Admitted with the
// placement and the GPU slots of each node, kept on the attempt so that a
// restarted server dispatches the same ones (and written into the event's
// message for people).
// note, when set, goes into each admission's message after the price.
func (rd *round) admit(ctx context.Context, as []engine.Admission, blocked map[string]bool, disp *roundDispatch, note string) {
	if len(as) == 0 {
		return
	}
	used := rd.usedSlots()
	for _, a := range as {
		if blocked[a.Workload] {
			continue
		}
		id, _ := strconv.ParseInt(a.Workload, 10, 64)
		j := rd.jobs[id]
		if j == nil || j.State != store.Pending {
			continue
		}
		nodes := assignSlots(used, a.Pool, a.Nodes, a.GPUsPerNode)
		pl := &store.Placement{
			Cluster: a.Pool.Cluster, Pool: a.Pool.Pool, Provider: a.Provider, Region: a.Region, GPU: a.GPU,
			GPUsPerNode: a.GPUsPerNode, Nodes: a.Nodes, PriceClass: a.PriceClass,
			BilledPerGPUHour: a.Cost.BilledPerGPUHour, Contract: a.Contract, Borrowed: a.Borrowed,
		}
		if o := rd.obs[a.Pool.Cluster]; o.ok() {
			recordWhere(pl, o.b)
		}
		msg := fmt.Sprintf(view.PlacedPrefix+"%s (%s, %s, $%.2f/GPU-h effective)%s; %s",
			a.Pool, a.Provider, a.PriceClass, a.Cost.EffectivePerGPUHour, note, formatSlots(nodes))
		rd.plan(j, store.Move{To: store.Admitted, Placement: pl, Slots: storeSlots(nodes), Message: msg}, func(moved *store.Job) {
			if moved == nil {
				releaseSlots(used, a.Pool, nodes)
				return
			}
			rd.s.rec.slots[id] = attemptSlots{attempt: j.Attempt, pool: a.Pool, nodes: nodes}
			rd.s.metrics.admissions.Inc()
			disp.add(moved)
		})
		if len(rd.batch) >= admitBatch {
			rd.flush(ctx)
		}
	}
	rd.flush(ctx)
}
