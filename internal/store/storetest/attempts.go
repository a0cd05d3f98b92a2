package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"gpubroker/internal/store"
)

// testAttempts follows one job through two attempts (the first lost while
// running, the second failing) and checks what Attempts says after each
// step: placement and slots at admission, start, end, outcome, reason and
// exit code, in attempt order.
func testAttempts(t *testing.T, open func(t *testing.T) store.Store) {
	s := openClosed(t, open)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	j := mustCreate(t, s, newJob("ml", ""), at(0))
	other := mustCreate(t, s, newJob("ml", ""), at(0))
	first := store.Attempt{JobID: j.ID, Attempt: 1, State: store.Pending}
	check := func(what string, id int64, want ...store.Attempt) {
		t.Helper()
		got, err := s.Attempts(ctx(t), id)
		if err != nil {
			t.Fatalf("%s: Attempts(%d): %v", what, id, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: attempts of job %d (-want +got):\n%s", what, id, diff)
		}
	}
	check("created", j.ID, first)

	pl := func(c string) *store.Placement {
		return &store.Placement{Cluster: c, Pool: "h100", Provider: "aws", Region: "us-east-1", GPU: "H100",
			GPUsPerNode: 2, Nodes: []int{0, 3}}
	}
	slots := []store.NodeSlots{{Node: 0, GPUs: []int{0, 1}}, {Node: 3, GPUs: []int{2, 3}}}
	mustMove(t, s, j.ID, store.Move{From: store.Pending, Attempt: 1, To: store.Admitted, Placement: pl("a"),
		Slots: slots, Message: "placed on a/h100", At: at(1)})
	first = store.Attempt{JobID: j.ID, Attempt: 1, Cluster: "a", Pool: "h100", Provider: "aws",
		Region: "us-east-1", Slots: slots, State: store.Admitted, Admitted: at(1).UTC()}
	check("admitted", j.ID, first)

	mustMove(t, s, j.ID, store.Move{From: store.Admitted, Attempt: 1, To: store.Dispatched, At: at(2)})
	mustMove(t, s, j.ID, store.Move{From: store.Dispatched, Attempt: 1, To: store.Running, At: at(3)})
	first.State, first.Started = store.Running, at(3).UTC()
	check("running", j.ID, first)

	// A move that does not apply leaves the attempts as they are.
	if _, err := s.MoveJob(ctx(t), j.ID, store.Move{From: store.Pending, Attempt: 1, To: store.Admitted,
		Placement: pl("z"), At: at(4)}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale move: %v, want ErrConflict", err)
	}
	check("after a stale move", j.ID, first)

	mustMove(t, s, j.ID, store.Move{From: store.Running, Attempt: 1, To: store.Pending, NextAttempt: true,
		Message: "Lost: cluster a unreachable", At: at(5)})
	first.Ended, first.Outcome, first.Reason = at(5).UTC(), store.OutcomeRetried, "Lost: cluster a unreachable"
	second := store.Attempt{JobID: j.ID, Attempt: 2, State: store.Pending}
	check("lost", j.ID, first, second)

	mustMove(t, s, j.ID, store.Move{From: store.Pending, Attempt: 2, To: store.Admitted, Placement: pl("b"),
		At: at(6)})
	mustMove(t, s, j.ID, store.Move{From: store.Admitted, Attempt: 2, To: store.Dispatched, At: at(7)})
	mustMove(t, s, j.ID, store.Move{From: store.Dispatched, Attempt: 2, To: store.Running, At: at(8)})
	code := 3
	mustMove(t, s, j.ID, store.Move{From: store.Running, Attempt: 2, To: store.Failed, ExitCode: &code,
		Reason: "exit 3", Message: "Failed: exit code 3", At: at(9)})
	second = store.Attempt{JobID: j.ID, Attempt: 2, Cluster: "b", Pool: "h100", Provider: "aws",
		Region: "us-east-1", State: store.Failed, Admitted: at(6).UTC(), Started: at(8).UTC(),
		Ended: at(9).UTC(), ExitCode: &code, Outcome: string(store.Failed), Reason: "Failed: exit code 3"}
	check("failed", j.ID, first, second)

	// Another job's attempts are its own.
	check("the other job", other.ID, store.Attempt{JobID: other.ID, Attempt: 1, State: store.Pending})
	if _, err := s.Attempts(ctx(t), 999); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Attempts of no job: %v, want ErrNotFound", err)
	}

	// They survive a reopen.
	s.Close()
	s = openClosed(t, open)
	check("reopened", j.ID, first, second)
}

// testAttemptsBatch: MoveJobs writes each applied move's attempt in its
// transaction, and none for a move that does not apply.
func testAttemptsBatch(t *testing.T, open func(t *testing.T) store.Store) {
	s := openClosed(t, open)
	a := mustCreate(t, s, newJob("ml", ""), t0)
	b := mustCreate(t, s, newJob("ml", ""), t0)
	pl := &store.Placement{Cluster: "c", Pool: "p", Provider: "gcp", Region: "eu", GPUsPerNode: 1, Nodes: []int{0}}
	_, errs, err := s.MoveJobs(ctx(t), []store.JobMove{
		{ID: a.ID, Move: store.Move{From: store.Pending, Attempt: 1, To: store.Admitted, Placement: pl,
			Slots: []store.NodeSlots{{Node: 0, GPUs: []int{0}}}, At: t0}},
		{ID: b.ID, Move: store.Move{From: store.Running, Attempt: 1, To: store.Succeeded, At: t0}},
		{ID: a.ID, Move: store.Move{From: store.Admitted, Attempt: 1, To: store.Cancelled, Message: "by alice",
			At: t0.Add(time.Second)}},
	})
	if err != nil || errs[0] != nil || !errors.Is(errs[1], store.ErrConflict) || errs[2] != nil {
		t.Fatalf("MoveJobs: %v %v", errs, err)
	}
	want := map[int64][]store.Attempt{
		a.ID: {{JobID: a.ID, Attempt: 1, Cluster: "c", Pool: "p", Provider: "gcp", Region: "eu",
			Slots: []store.NodeSlots{{Node: 0, GPUs: []int{0}}}, State: store.Cancelled, Admitted: t0.UTC(),
			Ended: t0.Add(time.Second).UTC(), Outcome: string(store.Cancelled), Reason: "by alice"}},
		b.ID: {{JobID: b.ID, Attempt: 1, State: store.Pending}},
	}
	for id, w := range want {
		got, err := s.Attempts(ctx(t), id)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(w, got); diff != "" {
			t.Errorf("attempts of job %d (-want +got):\n%s", id, diff)
		}
	}
}

// LegacyEvents are the events of one job (ID id) as a broker wrote them
// before the store kept attempts: placed on a cluster with slots, lost,
// placed again, succeeded. A driver's upgrade test writes them into a
// database of the older schema, opens it, and calls AttemptsAfterUpgrade.
func LegacyEvents(id int64) []store.Event {
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second).UTC() }
	return []store.Event{
		{JobID: id, Seq: 1, At: at(0), Actor: "alice", To: store.Pending, Attempt: 1, Message: "submitted"},
		{JobID: id, Seq: 2, At: at(1), Actor: "reconciler", From: store.Pending, To: store.Admitted, Attempt: 1,
			Message: "placed on aws-slurm/h100 (aws, committed, $0.00/GPU-h effective); gpu slots: 0=0,1 1=0,1"},
		{JobID: id, Seq: 3, At: at(2), Actor: "reconciler", From: store.Admitted, To: store.Dispatched, Attempt: 1},
		{JobID: id, Seq: 4, At: at(3), Actor: "reconciler", From: store.Dispatched, To: store.Running, Attempt: 1},
		{JobID: id, Seq: 5, At: at(9), Actor: "reconciler", From: store.Running, To: store.Pending, Attempt: 2,
			Message: "Lost: cluster aws-slurm unreachable"},
		{JobID: id, Seq: 6, At: at(10), Actor: "reconciler", From: store.Pending, To: store.Admitted, Attempt: 2,
			Message: "placed on onprem/h100 (onprem, committed, $0.00/GPU-h effective); node 0: GPUs 2-3"},
		{JobID: id, Seq: 7, At: at(11), Actor: "reconciler", From: store.Admitted, To: store.Dispatched, Attempt: 2},
	}
}

// AttemptsAfterUpgrade checks the attempts of job id, whose events were
// LegacyEvents(id) before the upgrade (it is DISPATCHED at attempt 2):
// what the events told, then a move after the upgrade kept.
func AttemptsAfterUpgrade(t *testing.T, s store.Store, id int64) {
	t.Helper()
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second).UTC() }
	want := []store.Attempt{
		{JobID: id, Attempt: 1, Cluster: "aws-slurm", Pool: "h100",
			Slots: []store.NodeSlots{{Node: 0, GPUs: []int{0, 1}}, {Node: 1, GPUs: []int{0, 1}}},
			State: store.Running, Admitted: at(1), Started: at(3), Ended: at(9), Outcome: store.OutcomeRetried,
			Reason: "Lost: cluster aws-slurm unreachable"},
		{JobID: id, Attempt: 2, Cluster: "onprem", Pool: "h100", State: store.Dispatched, Admitted: at(10)},
	}
	got, err := s.Attempts(ctx(t), id)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("attempts after the upgrade (-want +got):\n%s", diff)
	}
	mustMove(t, s, id, store.Move{From: store.Dispatched, Attempt: 2, To: store.Running, At: at(12)})
	want[1].State, want[1].Started = store.Running, at(12)
	got, err = s.Attempts(ctx(t), id)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("attempts after a move after the upgrade (-want +got):\n%s", diff)
	}
}
