package control

import (
	"context"
	"testing"
	"time"

	"gpubroker/internal/store"
)

// TestConflictedMoveKeepsItsHold: a job holding capacity whose move in a
// round conflicts (someone else moved it after the round read it) is no
// longer acted on by the round, but its capacity stays held until the next
// round reads what it is now: dropped, the engine could place another job
// on its GPUs in the same round (TestQueueAheadSlurm once saw 41 jobs held
// on 32 GPUs and 8 queue slots).
func TestConflictedMoveKeepsItsHold(t *testing.T) {
	e := newStoppedEnv(t)
	st := e.st
	// A server that is not opened: no reconciler runs beside this round.
	srv, err := New(e.config())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	j := e.submitDirect(task("true"))
	now := time.Now()
	pl := &store.Placement{Cluster: LocalCluster, Pool: LocalPool, GPU: "H100", GPUsPerNode: 1, Nodes: []int{0}}
	for _, m := range []store.Move{
		{From: store.Pending, Attempt: 1, To: store.Admitted, Placement: pl, At: now},
		{From: store.Admitted, Attempt: 1, To: store.Dispatched, At: now},
		{From: store.Dispatched, Attempt: 1, To: store.Running, At: now},
	} {
		if _, errs, err := st.MoveJobs(ctx, []store.JobMove{{ID: j.ID, Move: m}}); err != nil || errs[0] != nil {
			t.Fatalf("%s -> %s: %v %v", m.From, m.To, err, errs)
		}
	}
	// The round read the job Dispatched; it is Running by now.
	read, err := st.GetJob(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	read.State = store.Dispatched
	rd := &round{s: srv, now: now, jobs: map[int64]*store.Job{j.ID: read}, order: []int64{j.ID}}
	rd.plan(read, store.Move{From: store.Dispatched, Attempt: 1, To: store.Running, At: now}, nil)
	rd.flush(ctx)
	if rd.jobs[j.ID] != nil {
		t.Errorf("the round still acts on job %d after its move conflicted", j.ID)
	}
	if h := rd.holding(); len(h) != 1 || h[0].ID != j.ID {
		t.Fatalf("holding %v after the conflict, want job %d (its GPU is still in use)", h, j.ID)
	}
}
