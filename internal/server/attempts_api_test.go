package server

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"gpubroker/internal/store"
)

// TestAttemptsFromTheStore: GET /v1/jobs/{id}/attempts lists what the
// store keeps of each attempt; an attempt without provider and region (as
// those filled from old events are) gets them from the fleet's cluster.
func TestAttemptsFromTheStore(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.stop() // no reconciler: the moves below are the test's
	ctx := t.Context()
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	j := e.submitDirect(task("true"))
	for _, m := range []store.Move{
		{From: store.Pending, Attempt: 1, To: store.Admitted, Message: "placed somewhere", At: t0,
			Placement: &store.Placement{Cluster: LocalCluster, Pool: LocalPool, GPU: "H100", GPUsPerNode: 1, Nodes: []int{0}}},
		{From: store.Admitted, Attempt: 1, To: store.Pending, NextAttempt: true, Message: "not dispatchable", At: t0.Add(time.Second)},
		{From: store.Pending, Attempt: 2, To: store.Cancelled, Message: "by alice", At: t0.Add(2 * time.Second)},
	} {
		m.Actor = "test"
		if _, err := e.st.MoveJob(ctx, j.ID, m); err != nil {
			t.Fatal(err)
		}
	}
	e.start()
	var got struct{ Attempts []Attempt }
	e.mustDo(http.StatusOK, "GET", fmt.Sprintf("/v1/jobs/%d/attempts", j.ID), e.admin, nil, &got)
	want := []Attempt{
		{Attempt: 1, Cluster: LocalCluster, Pool: LocalPool, Provider: "onprem", Region: "local", State: store.Admitted,
			Admitted: t0, Ended: t0.Add(time.Second), Outcome: OutcomeRetried, Reason: "not dispatchable"},
		{Attempt: 2, State: store.Cancelled, Ended: t0.Add(2 * time.Second), Outcome: "CANCELLED", Reason: "by alice"},
	}
	if diff := cmp.Diff(want, got.Attempts); diff != "" {
		t.Errorf("attempts (-want +got):\n%s", diff)
	}
}
