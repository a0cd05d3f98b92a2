package control

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"gpubroker/internal/backend"
	"gpubroker/internal/store"
)

// countingSubmits is a backend whose Submits start nothing and are
// counted.
type countingSubmits struct {
	backend.Backend
	n atomic.Int32
}

func (c *countingSubmits) Submit(context.Context, backend.Spec) error {
	c.n.Add(1)
	return nil
}

// TestRecordedSubmitIsNotDispatchedAgain: a Submit recorded while the
// round runs (its move to dispatched planned, not yet written) keeps its
// attempt in flight until the move is written, so the round's dispatch
// does not hand the job, still Admitted in the round, to a second Submit.
// Before, it did: the second Submit's record planned the same move again,
// and that move's conflict dropped the job from the round (instrumented
// runs of TestQueueAheadSlurm's set-up saw 4 and 24 such conflicts in two
// of 20 runs).
func TestRecordedSubmitIsNotDispatchedAgain(t *testing.T) {
	e := newStoppedEnv(t)
	srv, err := New(e.config())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now()
	j := e.submitDirect(task("true"))
	pl := &store.Placement{Cluster: LocalCluster, Pool: LocalPool, GPU: "H100", GPUsPerNode: 1, Nodes: []int{0}}
	admitted, err := e.st.MoveJob(ctx, j.ID, store.Move{From: store.Pending, Attempt: 1, To: store.Admitted, Placement: pl, At: now})
	if err != nil {
		t.Fatal(err)
	}
	cb := &countingSubmits{Backend: e.be}
	name := attemptName(admitted)
	rd := &round{s: srv, now: now, fs: srv.fleet.Load(), obs: map[string]*observation{LocalCluster: {b: cb}},
		jobs: map[int64]*store.Job{j.ID: admitted}, order: []int64{j.ID}, owned: map[string]bool{name: true}}

	// The job's Submit (from an earlier round) is in flight, and returns.
	d := srv.rec.disp
	d.inflight[name] = true
	d.deliver(&submission{j: admitted, b: cb, spec: backend.Spec{Name: name, JobID: j.ID, Attempt: 1}})
	// The round takes it up while it hands over other work (add, on a
	// wake-up): the move to dispatched is planned, not yet written.
	rd.disp = rd.startDispatch(ctx)
	rd.recordReturned(ctx)
	rd.disp.finish()

	if d.inflight[name] {
		t.Errorf("%s was handed to a second Submit after its first one was recorded", name)
	}
	if got := rd.jobs[j.ID]; got == nil || got.State != store.Dispatched {
		t.Errorf("job %d in the round after dispatch: %+v, want Dispatched (a conflicting second record drops it)", j.ID, got)
	}
	if len(rd.conflicted) != 0 {
		t.Errorf("%d moves conflicted", len(rd.conflicted))
	}
	if st, err := e.st.GetJob(ctx, j.ID); err != nil || st.State != store.Dispatched {
		t.Errorf("job %d in the store: %v %v, want Dispatched", j.ID, st.State, err)
	}
}
