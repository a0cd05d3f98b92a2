package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"gpubroker/internal/model"
	"gpubroker/internal/store"
)

func testMoveLifecycle(t *testing.T, open func(t *testing.T) store.Store) {
	s := openClosed(t, open)
	j := mustCreate(t, s, newJob("ml", ""), t0)
	at := func(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }
	p := &store.Placement{Cluster: "c1", Pool: "p1", Provider: "aws", GPU: "H100", GPUsPerNode: 8,
		Nodes: []int{0}, PriceClass: model.OnDemand, BilledPerGPUHour: 3}
	p2 := &store.Placement{Cluster: "c2", Pool: "p2", Provider: "gcp", GPU: "H100", GPUsPerNode: 8,
		Nodes: []int{1}, PriceClass: model.Committed}
	one, zero := 1, 0

	got := mustMove(t, s, j.ID, store.Move{From: store.Pending, Attempt: 1, To: store.Admitted,
		Placement: p, Reason: "cheapest", Actor: "reconciler", Message: "admit to c1", At: at(1)})
	if got.State != store.Admitted || got.Attempt != 1 || got.Reason != "cheapest" || !got.Updated.Equal(at(1)) {
		t.Errorf("after admit: %+v", got)
	}
	if d := cmp.Diff(p, got.Placement); d != "" {
		t.Errorf("placement after admit (-want +got):\n%s", d)
	}
	got = mustMove(t, s, j.ID, store.Move{From: store.Admitted, Attempt: 1, To: store.Dispatched, Actor: "reconciler", At: at(2)})
	if got.Reason != "cheapest" || got.Placement == nil {
		t.Errorf("zero fields of a move must leave the job alone: %+v", got)
	}
	got = mustMove(t, s, j.ID, store.Move{From: store.Dispatched, Attempt: 1, To: store.Running, Actor: "backend", At: at(3)})
	if !got.StartedAt.Equal(at(3)) || !got.EndedAt.IsZero() {
		t.Errorf("running: started %v ended %v", got.StartedAt, got.EndedAt)
	}
	// The attempt fails with an error; the recovery policy retries it.
	got = mustMove(t, s, j.ID, store.Move{From: store.Running, Attempt: 1, To: store.Pending, NextAttempt: true,
		CountRestart: true, ExitCode: &one, Reason: "exit 1", Actor: "reconciler", Message: "restart 1 of 3", At: at(4)})
	if got.State != store.Pending || got.Attempt != 2 || got.Placement != nil || got.Restarts != 1 ||
		got.ExitCode == nil || *got.ExitCode != 1 || got.Reason != "exit 1" {
		t.Errorf("after restart: %+v", got)
	}
	// The old attempt can no longer be moved.
	_, err := s.MoveJob(ctx(t), j.ID, store.Move{From: store.Pending, Attempt: 1, To: store.Admitted, At: at(5)})
	wantErr(t, "move at the old attempt", err, store.ErrConflict)

	mustMove(t, s, j.ID, store.Move{From: store.Pending, Attempt: 2, To: store.Admitted, Placement: p2, Actor: "reconciler", At: at(5)})
	mustMove(t, s, j.ID, store.Move{From: store.Admitted, Attempt: 2, To: store.Dispatched, Actor: "reconciler", At: at(6)})
	mustMove(t, s, j.ID, store.Move{From: store.Dispatched, Attempt: 2, To: store.Running, Actor: "backend", At: at(7)})
	// Preempted: a new attempt, not an error restart.
	got = mustMove(t, s, j.ID, store.Move{From: store.Running, Attempt: 2, To: store.Pending, NextAttempt: true,
		Reason: "preempted", Actor: "reconciler", At: at(8)})
	if got.Attempt != 3 || got.Restarts != 1 || got.Placement != nil {
		t.Errorf("after preemption: attempt %d restarts %d placement %v", got.Attempt, got.Restarts, got.Placement)
	}
	mustMove(t, s, j.ID, store.Move{From: store.Pending, Attempt: 3, To: store.Admitted, Placement: p, Actor: "reconciler", At: at(9)})
	mustMove(t, s, j.ID, store.Move{From: store.Admitted, Attempt: 3, To: store.Dispatched, Actor: "reconciler", At: at(10)})
	mustMove(t, s, j.ID, store.Move{From: store.Dispatched, Attempt: 3, To: store.Running, Actor: "backend", At: at(11)})
	got = mustMove(t, s, j.ID, store.Move{From: store.Running, Attempt: 3, To: store.Succeeded, ExitCode: &zero,
		Reason: "exit 0", Actor: "backend", At: at(12)})
	want := &store.Job{ID: 1, Team: "ml", User: "alice", Workload: Workload("job"), Spec: "name: job\n",
		State: store.Succeeded, Attempt: 3, Reason: "exit 0", Placement: p, Restarts: 1, ExitCode: &zero,
		Created: t0, Updated: at(12), StartedAt: at(11), EndedAt: at(12)}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("final job (-want +got):\n%s", d)
	}
	if g, err := s.GetJob(ctx(t), j.ID); err != nil {
		t.Fatal(err)
	} else if d := cmp.Diff(want, g); d != "" {
		t.Errorf("GetJob of final job (-want +got):\n%s", d)
	}

	evs, err := s.Events(ctx(t), j.ID)
	if err != nil {
		t.Fatalf("Events: %v", err)
	}
	type ev struct {
		Seq      int64
		Actor    string
		From, To store.State
		Attempt  int
		Message  string
		Sec      int
	}
	var gotEv []ev
	for _, e := range evs {
		if e.JobID != j.ID {
			t.Errorf("event of job %d has JobID %d", j.ID, e.JobID)
		}
		gotEv = append(gotEv, ev{e.Seq, e.Actor, e.From, e.To, e.Attempt, e.Message, int(e.At.Sub(t0) / time.Second)})
		if e.At.Sub(t0)%time.Second != 0 {
			t.Errorf("event %d at %v lost precision", e.Seq, e.At)
		}
	}
	wantEv := []ev{
		{1, "alice", "", store.Pending, 1, "submitted", 0},
		{2, "reconciler", store.Pending, store.Admitted, 1, "admit to c1", 1},
		{3, "reconciler", store.Admitted, store.Dispatched, 1, "", 2},
		{4, "backend", store.Dispatched, store.Running, 1, "", 3},
		{5, "reconciler", store.Running, store.Pending, 2, "restart 1 of 3", 4},
		{6, "reconciler", store.Pending, store.Admitted, 2, "", 5},
		{7, "reconciler", store.Admitted, store.Dispatched, 2, "", 6},
		{8, "backend", store.Dispatched, store.Running, 2, "", 7},
		{9, "reconciler", store.Running, store.Pending, 3, "", 8},
		{10, "reconciler", store.Pending, store.Admitted, 3, "", 9},
		{11, "reconciler", store.Admitted, store.Dispatched, 3, "", 10},
		{12, "backend", store.Dispatched, store.Running, 3, "", 11},
		{13, "backend", store.Running, store.Succeeded, 3, "", 12},
	}
	// The creation event's actor and message are the driver's; check the rest exactly.
	if len(gotEv) > 0 {
		gotEv[0].Actor, gotEv[0].Message = "alice", "submitted"
	}
	if d := cmp.Diff(wantEv, gotEv); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
}

func testMoveErrors(t *testing.T, open func(t *testing.T) store.Store) {
	s := openClosed(t, open)
	j := mustCreate(t, s, newJob("ml", ""), t0)
	for _, tc := range []struct {
		name string
		id   int64
		m    store.Move
		kind error
	}{
		{"wrong from", j.ID, store.Move{From: store.Admitted, Attempt: 1, To: store.Dispatched}, store.ErrConflict},
		{"wrong attempt", j.ID, store.Move{From: store.Pending, Attempt: 2, To: store.Admitted}, store.ErrConflict},
		{"forbidden", j.ID, store.Move{From: store.Pending, Attempt: 1, To: store.Running}, store.ErrInvalid},
		{"unknown to", j.ID, store.Move{From: store.Pending, Attempt: 1, To: "DONE"}, store.ErrInvalid},
		{"unknown from", j.ID, store.Move{From: "", Attempt: 1, To: store.Admitted}, store.ErrInvalid},
		{"next attempt not to pending", j.ID, store.Move{From: store.Pending, Attempt: 1, To: store.Admitted, NextAttempt: true}, store.ErrInvalid},
		{"no such job", 999, store.Move{From: store.Pending, Attempt: 1, To: store.Admitted}, store.ErrNotFound},
	} {
		got, err := s.MoveJob(ctx(t), tc.id, tc.m)
		wantErr(t, tc.name, err, tc.kind)
		if got != nil && err != nil {
			t.Errorf("%s: MoveJob returned a job with its error", tc.name)
		}
	}
	// Nothing changed.
	got, err := s.GetJob(ctx(t), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(j, got); d != "" {
		t.Errorf("failed moves changed the job (-want +got):\n%s", d)
	}
	if evs, err := s.Events(ctx(t), j.ID); err != nil || len(evs) != 1 {
		t.Errorf("failed moves wrote events: %v %v", evs, err)
	}
}

// testMoveBatch: MoveJobs applies each move as MoveJob would, in order
// (a job's second move sees its first), reports each failure at its index
// without holding back the others, writes a move's usage with it, and on a
// failure of the store applies nothing.
func testMoveBatch(t *testing.T, open func(t *testing.T) store.Store) {
	s := openClosed(t, open)
	a := mustCreate(t, s, newJob("ml", ""), t0)
	b := mustCreate(t, s, newJob("ml", ""), t0)
	c := mustCreate(t, s, newJob("ml", ""), t0)
	d := mustCreate(t, s, newJob("ml", ""), t0)
	at := t0.Add(time.Minute)
	pl := &store.Placement{Cluster: "c1", Pool: "p1", Provider: "aws", GPU: "H100", GPUsPerNode: 8, Nodes: []int{1}}
	bill := store.Usage{JobID: c.ID, Attempt: 1, Team: "ml", Provider: "aws", Cluster: "c1", Pool: "p1",
		PriceClass: model.Spot, GPUs: 8, Start: t0, End: at, CostUSD: 2}
	badBill := bill
	badBill.JobID, badBill.End = d.ID, t0.Add(-time.Hour)
	mv := func(id int64, m store.Move) store.JobMove { return store.JobMove{ID: id, Move: m} }
	moves := []store.JobMove{
		mv(a.ID, store.Move{From: store.Pending, Attempt: 1, To: store.Admitted, Placement: pl, At: at, Actor: "r"}),
		mv(a.ID, store.Move{From: store.Admitted, Attempt: 1, To: store.Dispatched, At: at, Actor: "r", Message: "sent"}),
		mv(b.ID, store.Move{From: store.Running, Attempt: 1, To: store.Succeeded, At: at}),
		mv(b.ID, store.Move{From: store.Pending, Attempt: 1, To: store.Running, At: at}),
		mv(999, store.Move{From: store.Pending, Attempt: 1, To: store.Admitted, At: at}),
		mv(c.ID, store.Move{From: store.Pending, Attempt: 1, To: store.Cancelled, Reason: "Cancelled", At: at, Usage: &bill}),
		mv(d.ID, store.Move{From: store.Pending, Attempt: 1, To: store.Cancelled, At: at, Usage: &badBill}),
	}
	jobs, errs, err := s.MoveJobs(ctx(t), moves)
	if err != nil {
		t.Fatalf("MoveJobs: %v", err)
	}
	if len(jobs) != len(moves) || len(errs) != len(moves) {
		t.Fatalf("MoveJobs: %d jobs and %d errors for %d moves", len(jobs), len(errs), len(moves))
	}
	for i, want := range []struct {
		state store.State
		kind  error
	}{
		{store.Admitted, nil}, {store.Dispatched, nil}, {"", store.ErrConflict}, {"", store.ErrInvalid},
		{"", store.ErrNotFound}, {store.Cancelled, nil}, {"", store.ErrInvalid},
	} {
		if want.kind != nil {
			wantErr(t, fmt.Sprintf("move %d", i), errs[i], want.kind)
			if jobs[i] != nil {
				t.Errorf("move %d: a job with its error", i)
			}
			continue
		}
		if errs[i] != nil || jobs[i] == nil || jobs[i].State != want.state {
			t.Errorf("move %d: got %v, %v; want %s", i, jobs[i], errs[i], want.state)
		}
	}
	if jobs[1] != nil && (jobs[1].Placement == nil || jobs[1].Placement.Pool != "p1") {
		t.Errorf("the second move of job %d lost the first's placement: %+v", a.ID, jobs[1].Placement)
	}
	if evs, err := s.Events(ctx(t), a.ID); err != nil || len(evs) != 3 || evs[2].Message != "sent" {
		t.Errorf("events of job %d: %+v %v; want created, admitted, dispatched (sent)", a.ID, evs, err)
	}
	for _, id := range []int64{b.ID, d.ID} {
		if got, err := s.GetJob(ctx(t), id); err != nil || got.State != store.Pending {
			t.Errorf("job %d after failed moves: %v %v; want PENDING", id, got, err)
		}
	}
	us, err := s.ListUsage(ctx(t), t0.Add(-time.Hour), t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if want := []store.Usage{bill}; !cmp.Equal(want, us, cmpopts.EquateApproxTime(0)) {
		t.Errorf("usage after the batch: %+v; want only job %d's", us, c.ID)
	}
	if _, _, err := s.MoveJobs(ctx(t), nil); err != nil {
		t.Errorf("MoveJobs(nil): %v", err)
	}

	// A store that fails (here: the caller gave up) applies none.
	gone, cancel := context.WithCancel(ctx(t))
	cancel()
	if _, _, err := s.MoveJobs(gone, []store.JobMove{
		mv(b.ID, store.Move{From: store.Pending, Attempt: 1, To: store.Cancelled, At: at}),
	}); err == nil {
		t.Errorf("MoveJobs with a cancelled context: no error")
	}
	if got, err := s.GetJob(ctx(t), b.ID); err != nil || got.State != store.Pending {
		t.Errorf("job %d after a failed batch: %v %v; want PENDING", b.ID, got, err)
	}
}

func testTerminal(t *testing.T, open func(t *testing.T) store.Store) {
	s := openClosed(t, open)
	for i, end := range []store.State{store.Succeeded, store.Failed, store.Cancelled} {
		id := int64(i + 1)
		mustCreate(t, s, newJob("ml", ""), t0)
		from := store.Pending
		if end == store.Succeeded {
			mustMove(t, s, id, store.Move{From: store.Pending, Attempt: 1, To: store.Admitted, At: t0})
			mustMove(t, s, id, store.Move{From: store.Admitted, Attempt: 1, To: store.Dispatched, At: t0})
			from = store.Dispatched
		}
		got := mustMove(t, s, id, store.Move{From: from, Attempt: 1, To: end, At: t0.Add(time.Hour)})
		if !got.EndedAt.Equal(t0.Add(time.Hour)) {
			t.Errorf("%s: EndedAt %v", end, got.EndedAt)
		}
		for _, to := range []store.State{store.Pending, store.Admitted, store.Running, store.Cancelled, store.Failed} {
			_, err := s.MoveJob(ctx(t), id, store.Move{From: end, Attempt: 1, To: to, NextAttempt: to == store.Pending})
			wantErr(t, fmt.Sprintf("%s -> %s", end, to), err, store.ErrInvalid)
		}
		// A stale writer that still thinks it runs gets a conflict.
		_, err := s.MoveJob(ctx(t), id, store.Move{From: store.Pending, Attempt: 1, To: store.Cancelled})
		wantErr(t, fmt.Sprintf("stale move of a %s job", end), err, store.ErrConflict)
		if g, _ := s.GetJob(ctx(t), id); g == nil || g.State != end {
			t.Errorf("%s job moved: %+v", end, g)
		}
	}
}

func testConcurrentMove(t *testing.T, open func(t *testing.T) store.Store) {
	s := openClosed(t, open)
	j := mustCreate(t, s, newJob("ml", ""), t0)
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			_, errs[i] = s.MoveJob(ctx(t), j.ID, store.Move{From: store.Pending, Attempt: 1, To: store.Admitted,
				Actor: fmt.Sprintf("replica-%d", i), At: t0})
		})
	}
	close(start)
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("goroutine %d: %v, want nil or ErrConflict", i, err)
		}
	}
	if won != 1 {
		t.Errorf("%d of %d concurrent moves won, want exactly 1", won, n)
	}
	evs, err := s.Events(ctx(t), j.ID)
	if err != nil || len(evs) != 2 {
		t.Errorf("events after the race: %v %v, want creation + one move", evs, err)
	}
}
