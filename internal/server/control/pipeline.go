package control

import (
	"context"
	"fmt"

	"gpubroker/internal/lifecycle"
	"gpubroker/internal/spec"
	"gpubroker/internal/store"
)

// Pipelines. A multi-document task file is a SkyPilot pipeline: its stages
// run one after another, each only once the previous one SUCCEEDED. Submit
// stores stage k with After set to stage k-1's job; the reconciler, before
// it schedules, holds back every pending job whose After job has not
// succeeded (it never reaches the engine) and cancels one whose After job
// ended otherwise. Cancelling a stage through the API therefore cancels
// the later stages in the next round, by the same rule.

// stagePos is where a job stands in its pipeline: stage k of n.
type stagePos struct{ k, n int }

// holdBack applies the pipeline rule to the round's pending jobs, in ID
// order (so a stage cancelled here is seen ended by the next stage in the
// same round). It returns why each held job waits.
func (rd *round) holdBack(ctx context.Context) map[int64]string {
	held := map[int64]string{}
	for _, id := range rd.order {
		j := rd.jobs[id]
		if j == nil || j.State != store.Pending || j.After == 0 {
			continue
		}
		state, err := rd.stateOf(ctx, j.After)
		if err != nil {
			// Cannot tell: keep it back this round rather than run it early.
			rd.s.log.Warn("pipeline: reading the job a stage waits for", "job", j.ID, "after", j.After, "err", err)
			held[j.ID] = fmt.Sprintf("waiting for job %d (%s)", j.After, rd.stage(ctx, j))
			continue
		}
		switch lifecycle.Stage(state.Terminal(), state == store.Succeeded) {
		case lifecycle.Go:
			// Its turn: the engine schedules it like any other job.
		case lifecycle.Cancel:
			reason := fmt.Sprintf("job %d ended %s", j.After, state)
			rd.move(ctx, j, store.Move{To: store.Cancelled, Reason: reason,
				Message: fmt.Sprintf("%s; %s of the pipeline will not run", reason, rd.stage(ctx, j))})
		default:
			held[j.ID] = fmt.Sprintf("waiting for job %d (%s)", j.After, rd.stage(ctx, j))
		}
	}
	// Positions are kept only while a job is held.
	for id := range rd.s.rec.stages {
		if _, ok := held[id]; !ok {
			delete(rd.s.rec.stages, id)
		}
	}
	return held
}

// stateOf is the state of job id: as the round knows it while active,
// else as stored (it ended, or someone else moved it this round).
func (rd *round) stateOf(ctx context.Context, id int64) (store.State, error) {
	if j := rd.jobs[id]; j != nil {
		return j.State, nil
	}
	j, err := rd.s.store.GetJob(ctx, id)
	if err != nil {
		return "", err
	}
	return j.State, nil
}

// stage says where j stands in its pipeline ("stage 2 of 3"): k by
// following After back to the first stage, n from the task file submitted.
// Both are fixed at submit, so they are worked out once per held job.
func (rd *round) stage(ctx context.Context, j *store.Job) string {
	pos, ok := rd.s.rec.stages[j.ID]
	if !ok {
		pos.k = 1
		for prev, cur := j.ID, j.After; cur != 0 && cur < prev; pos.k++ {
			prev = cur
			if a := rd.jobs[cur]; a != nil {
				cur = a.After
				continue
			}
			a, err := rd.s.store.GetJob(ctx, cur)
			if err != nil {
				return fmt.Sprintf("stage %d or later", pos.k+1)
			}
			cur = a.After
		}
		if t, err := spec.ParseTask([]byte(j.Spec), "task.yaml"); err == nil {
			pos.n = len(t.Workloads)
		}
		pos.n = max(pos.n, pos.k)
		rd.s.rec.stages[j.ID] = pos
	}
	return fmt.Sprintf("stage %d of %d", pos.k, pos.n)
}
