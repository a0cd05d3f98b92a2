package storetest

import (
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"gpubroker/internal/store"
)

// testChanges: Changes lists what was created and moved since a cursor,
// as GetJob has it, in ID order, and nothing written before it was taken
// is needed to follow the store.
func testChanges(t *testing.T, open func(t *testing.T) store.Store) {
	s := openClosed(t, open)
	a := mustCreate(t, s, newJob("ml", ""), t0)
	b := mustCreate(t, s, newJob("ml", ""), t0)
	c0, err := s.Cursor(ctx(t))
	if err != nil {
		t.Fatalf("Cursor: %v", err)
	}
	changes := func(c store.Cursor) ([]*store.Job, store.Cursor) {
		t.Helper()
		got, next, err := s.Changes(ctx(t), c)
		if err != nil {
			t.Fatalf("Changes(%d): %v", c, err)
		}
		ids := make([]int64, len(got))
		for i, j := range got {
			ids[i] = j.ID
			want, err := s.GetJob(ctx(t), j.ID)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(want, j); d != "" {
				t.Errorf("Changes(%d), job %d against GetJob (-get +changes):\n%s", c, j.ID, d)
			}
		}
		if !slices.IsSorted(ids) {
			t.Errorf("Changes(%d) listed %v, not in ID order", c, ids)
		}
		return got, next
	}
	has := func(js []*store.Job, id int64, st store.State) bool {
		for _, j := range js {
			if j.ID == id && j.State == st {
				return true
			}
		}
		return false
	}
	all, _ := changes(0)
	if !has(all, a.ID, store.Pending) || !has(all, b.ID, store.Pending) {
		t.Errorf("Changes(0) = %d jobs, want both created ones", len(all))
	}
	mustMove(t, s, a.ID, store.Move{From: store.Pending, Attempt: 1, To: store.Admitted, Actor: "r", At: t0})
	c := mustCreate(t, s, newJob("ml", ""), t0)
	got, c1 := changes(c0)
	if !has(got, a.ID, store.Admitted) || !has(got, c.ID, store.Pending) {
		t.Errorf("Changes after a move and a create: %d jobs, want job %d ADMITTED and job %d PENDING", len(got), a.ID, c.ID)
	}
	// A batch of moves, one of them refused, and a terminal move: the
	// applied ones are listed, in their new state.
	_, errs, err := s.MoveJobs(ctx(t), []store.JobMove{
		{ID: b.ID, Move: store.Move{From: store.Pending, Attempt: 1, To: store.Cancelled, Actor: "r", At: t0}},
		{ID: c.ID, Move: store.Move{From: store.Running, Attempt: 1, To: store.Succeeded, Actor: "r", At: t0}},
	})
	if err != nil || errs[0] != nil || errs[1] == nil {
		t.Fatalf("MoveJobs: %v %v", errs, err)
	}
	got, c2 := changes(c1)
	if !has(got, b.ID, store.Cancelled) {
		t.Errorf("Changes after cancelling job %d does not list it CANCELLED (%d jobs)", b.ID, len(got))
	}
	// Nothing written since: a store may list jobs again, never in an
	// older state.
	got, _ = changes(c2)
	for _, j := range got {
		if j.ID == b.ID && j.State != store.Cancelled {
			t.Errorf("Changes with no write since lists job %d as %s", j.ID, j.State)
		}
	}
}

// ChangesAfterUpgrade checks a store opened over a database written by an
// older schema, whose pending job id is from before the upgrade: that job
// is after the zero cursor, and a write after the upgrade is after the
// cursor taken at it.
func ChangesAfterUpgrade(t *testing.T, s store.Store, id int64) {
	t.Helper()
	ch, _, err := s.Changes(ctx(t), 0)
	if err != nil || !slices.ContainsFunc(ch, func(j *store.Job) bool { return j.ID == id }) {
		t.Errorf("Changes(0) after the upgrade: %d jobs, %v; want job %d among them", len(ch), err, id)
	}
	c, err := s.Cursor(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	mustMove(t, s, id, store.Move{From: store.Pending, Attempt: 1, To: store.Cancelled, Actor: "test", At: t0})
	ch, _, err = s.Changes(ctx(t), c)
	if err != nil || !slices.ContainsFunc(ch, func(j *store.Job) bool { return j.ID == id && j.State == store.Cancelled }) {
		t.Errorf("Changes after cancelling job %d: %d jobs, %v; want it, cancelled", id, len(ch), err)
	}
}

// testChangesConcurrent follows the store with Changes while writers
// create and move jobs concurrently: the view it builds must end equal to
// the store's, whatever order the writers' transactions commit in.
func testChangesConcurrent(t *testing.T, open func(t *testing.T) store.Store) {
	s := openClosed(t, open)
	cur, err := s.Cursor(ctx(t))
	if err != nil {
		t.Fatalf("Cursor: %v", err)
	}
	view := map[int64]*store.Job{}
	follow := func() {
		got, next, err := s.Changes(ctx(t), cur)
		if err != nil {
			t.Errorf("Changes: %v", err)
			return
		}
		for _, j := range got {
			view[j.ID] = j
		}
		cur = next
	}
	const writers, each = 4, 25
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				j, err := s.CreateJob(ctx(t), newJob("ml", ""), t0)
				if err != nil {
					t.Errorf("writer %d: CreateJob: %v", w, err)
					return
				}
				to := []store.State{store.Admitted, store.Cancelled}[i%2]
				if _, err := s.MoveJob(ctx(t), j.ID, store.Move{From: store.Pending, Attempt: 1, To: to, Actor: "w", At: t0}); err != nil {
					t.Errorf("writer %d: MoveJob: %v", w, err)
					return
				}
			}
		})
	}
	go func() { wg.Wait(); close(done) }()
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		follow()
	}
	follow()
	all, err := s.ListJobs(ctx(t), store.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != writers*each || len(view) != len(all) {
		t.Fatalf("followed %d jobs, the store has %d, want %d", len(view), len(all), writers*each)
	}
	for _, j := range all {
		switch v := view[j.ID]; {
		case v == nil:
			t.Errorf("job %d: never listed by Changes", j.ID)
		case v.State != j.State || v.Attempt != j.Attempt:
			t.Errorf("job %d: followed as %s at attempt %d, the store has it %s at attempt %d", j.ID, v.State, v.Attempt, j.State, j.Attempt)
		}
	}
}
