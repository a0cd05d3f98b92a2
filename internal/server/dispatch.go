package server

import (
	"context"
	"errors"

	"gpubroker/internal/backend"
	"gpubroker/internal/store"
)

// dispatchAll is step 7 of a round: dispatch every admitted job.
func (rd *round) dispatchAll(ctx context.Context) {
	for _, id := range rd.order {
		if j := rd.jobs[id]; j != nil && j.State == store.Admitted {
			rd.dispatch(ctx, j)
		}
	}
}

// dispatch sends an admitted job to its backend (idempotent by name: after
// a crash between Submit and the move, Submit finds the object and starts
// nothing) and marks it dispatched.
func (rd *round) dispatch(ctx context.Context, j *store.Job) {
	name := attemptName(j)
	o := rd.obs[j.Placement.Cluster]
	if !o.ok() {
		rd.s.rec.missing[name]++
		if rd.s.rec.missing[name] >= lostAfterRounds {
			delete(rd.s.rec.missing, name)
			reason := "ClusterUnhealthy: cluster " + j.Placement.Cluster + " cannot take work"
			if o != nil {
				reason += ": " + o.err.Error()
			}
			rd.move(ctx, j, store.Move{To: store.Pending, NextAttempt: true, Reason: reason,
				Message: "not dispatched: " + reason})
		}
		return
	}
	sl, ok := rd.s.rec.slots[j.ID]
	if !ok || sl.attempt != j.Attempt {
		// ensureSlots found none (should not happen): give the lowest.
		sl = attemptSlots{attempt: j.Attempt, nodes: defaultSlots(j.Placement)}
	}
	w := j.Workload
	sp := backend.Spec{
		Name: name, JobID: j.ID, Attempt: j.Attempt, Team: j.Team,
		Cluster: j.Placement.Cluster, Pool: j.Placement.Pool, Nodes: sl.nodes,
	}
	if w != nil {
		sp.Setup, sp.Run, sp.Workdir, sp.Envs, sp.CheckpointDir = w.Setup, w.Run, w.Workdir, w.Envs, w.CheckpointDir
	}
	if err := o.b.Submit(ctx, sp); err != nil {
		if errors.Is(err, backend.ErrUnavailable) || ctx.Err() != nil {
			rd.s.log.Warn("dispatch: backend unavailable; retrying next round", "name", name, "err", err)
			return
		}
		rd.move(ctx, j, store.Move{To: store.Failed, Reason: "DispatchFailed: " + err.Error(),
			Message: "the backend refused the attempt: " + err.Error()})
		return
	}
	delete(rd.s.rec.missing, name)
	if _, ok := rd.move(ctx, j, store.Move{To: store.Dispatched, Message: "submitted as " + name}); ok {
		rd.s.metrics.dispatchLat.Observe(max(0, rd.now.Sub(j.Updated).Seconds()))
	}
}
