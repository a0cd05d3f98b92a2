package storetest

import (
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

func testFleet(t *testing.T, open func(t *testing.T) store.Store) {
	s := openClosed(t, open)
	_, _, err := s.GetFleet(ctx(t))
	wantErr(t, "GetFleet before any", err, store.ErrNotFound)
	for i, doc := range []string{"providers: []\n", "providers:\n  - aws\n", ""} {
		v, err := s.PutFleet(ctx(t), doc, "admin", t0)
		if err != nil {
			t.Fatalf("PutFleet: %v", err)
		}
		if v != int64(i+1) {
			t.Errorf("PutFleet #%d: version %d", i+1, v)
		}
		got, gv, err := s.GetFleet(ctx(t))
		if err != nil || got != doc || gv != v {
			t.Errorf("GetFleet = %q, %d, %v; want %q, %d", got, gv, err, doc, v)
		}
	}
}

func testTokens(t *testing.T, open func(t *testing.T) store.Store) {
	s := openClosed(t, open)
	if got, err := s.ListTokens(ctx(t)); err != nil || len(got) != 0 {
		t.Errorf("ListTokens of an empty store: %v %v", got, err)
	}
	toks := []store.Token{
		{ID: "tok-b", Hash: "h2", Team: "ml", Role: "member", Name: "ci", Created: t0},
		{ID: "tok-a", Hash: "h1", Team: "", Role: "admin", Created: t0.Add(time.Second)},
		{ID: "tok-c", Hash: "h3", Team: "web", Role: "viewer", Created: t0.Add(2 * time.Second)},
	}
	for _, tk := range toks {
		if err := s.CreateToken(ctx(t), tk); err != nil {
			t.Fatalf("CreateToken(%s): %v", tk.ID, err)
		}
	}
	err := s.CreateToken(ctx(t), store.Token{ID: "tok-a", Hash: "h9", Role: "admin"})
	wantErr(t, "CreateToken with a used id", err, store.ErrConflict)
	err = s.CreateToken(ctx(t), store.Token{ID: "tok-z", Hash: "h1", Role: "admin"})
	wantErr(t, "CreateToken with a used hash", err, store.ErrConflict)
	err = s.CreateToken(ctx(t), store.Token{ID: "tok-y", Hash: "h8", Role: "root"})
	wantErr(t, "CreateToken with an unknown role", err, store.ErrInvalid)
	err = s.CreateToken(ctx(t), store.Token{ID: "tok-x", Role: "admin"})
	wantErr(t, "CreateToken without hash", err, store.ErrInvalid)

	got, err := s.TokenByHash(ctx(t), "h2")
	if err != nil {
		t.Fatalf("TokenByHash: %v", err)
	}
	if d := cmp.Diff(toks[0], got); d != "" {
		t.Errorf("TokenByHash (-want +got):\n%s", d)
	}
	_, err = s.TokenByHash(ctx(t), "nope")
	wantErr(t, "TokenByHash of an unknown hash", err, store.ErrNotFound)
	list, err := s.ListTokens(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]store.Token{toks[1], toks[0], toks[2]}, list); d != "" {
		t.Errorf("ListTokens, in ID order (-want +got):\n%s", d)
	}
}

func testUsage(t *testing.T, open func(t *testing.T) store.Store) {
	s := openClosed(t, open)
	h := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }
	u := func(job int64, attempt, start, end int) store.Usage {
		return store.Usage{JobID: job, Attempt: attempt, Team: "ml", Provider: "aws", Cluster: "c1", Pool: "p1",
			PriceClass: model.Spot, Contract: "k", GPUs: 8, Start: h(start), End: h(end), CostUSD: 8.5 * float64(end-start)}
	}
	recs := []store.Usage{u(2, 1, 0, 2), u(1, 1, 0, 1), u(1, 2, 3, 5), u(3, 1, 6, 8)}
	if err := s.AddUsage(ctx(t), recs); err != nil {
		t.Fatalf("AddUsage: %v", err)
	}
	if err := s.AddUsage(ctx(t), nil); err != nil {
		t.Errorf("AddUsage(nil): %v", err)
	}
	bad := []store.Usage{u(4, 1, 0, 1), u(4, 1, 5, 4)}
	wantErr(t, "AddUsage with end before start", s.AddUsage(ctx(t), bad), store.ErrInvalid)

	for _, tc := range []struct {
		name     string
		from, to time.Time
		want     []store.Usage
	}{
		{"all", h(-10), h(10), []store.Usage{recs[1], recs[0], recs[2], recs[3]}},
		{"overlap start", h(1), h(4), []store.Usage{recs[0], recs[2]}},
		{"to is exclusive", h(5), h(6), nil},
		{"inside one", h(6).Add(time.Minute), h(7), []store.Usage{recs[3]}},
		{"before all", h(-3), h(0), nil},
	} {
		got, err := s.ListUsage(ctx(t), tc.from, tc.to)
		if err != nil {
			t.Fatalf("%s: ListUsage: %v", tc.name, err)
		}
		if d := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); d != "" {
			t.Errorf("%s: ListUsage (-want +got):\n%s", tc.name, d)
		}
	}
}

func testReopen(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	j := mustCreate(t, s, newJob("ml", "keep"), t0)
	waiting := newJob("ml", "")
	waiting.After = j.ID
	waiting = mustCreate(t, s, waiting, t0)
	moved := mustMove(t, s, j.ID, store.Move{From: store.Pending, Attempt: 1, To: store.Admitted,
		Placement: &store.Placement{Cluster: "c", Nodes: []int{1}}, Actor: "r", At: t0.Add(time.Second)})
	if _, err := s.PutFleet(ctx(t), "doc-1", "admin", t0); err != nil {
		t.Fatal(err)
	}
	tok := store.Token{ID: "t1", Hash: "hh", Team: "ml", Role: "member", Created: t0}
	if err := s.CreateToken(ctx(t), tok); err != nil {
		t.Fatal(err)
	}
	use := store.Usage{JobID: 1, Attempt: 1, Team: "ml", Start: t0, End: t0.Add(time.Hour), GPUs: 1, CostUSD: 1}
	if err := s.AddUsage(ctx(t), []store.Usage{use}); err != nil {
		t.Fatal(err)
	}
	evBefore, err := s.Events(ctx(t), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	s = openClosed(t, open)
	got, err := s.GetJob(ctx(t), j.ID)
	if err != nil {
		t.Fatalf("GetJob after reopen: %v", err)
	}
	if d := cmp.Diff(moved, got); d != "" {
		t.Errorf("job after reopen (-before +after):\n%s", d)
	}
	evAfter, err := s.Events(ctx(t), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(evBefore, evAfter); d != "" {
		t.Errorf("events after reopen (-before +after):\n%s", d)
	}
	if doc, v, err := s.GetFleet(ctx(t)); err != nil || doc != "doc-1" || v != 1 {
		t.Errorf("fleet after reopen: %q %d %v", doc, v, err)
	}
	if got, err := s.TokenByHash(ctx(t), "hh"); err != nil || !cmp.Equal(tok, got) {
		t.Errorf("token after reopen: %+v %v", got, err)
	}
	if got, err := s.ListUsage(ctx(t), t0, t0.Add(time.Hour)); err != nil || len(got) != 1 {
		t.Errorf("usage after reopen: %+v %v", got, err)
	}
	if got, err := s.GetJob(ctx(t), waiting.ID); err != nil || got.After != j.ID {
		t.Errorf("After after reopen: %+v %v; want %d", got, err, j.ID)
	}
	if _, err := s.CreateJob(ctx(t), newJob("ml", "keep"), t0); !errors.Is(err, store.ErrConflict) {
		t.Errorf("key after reopen: %v, want ErrConflict", err)
	}
	if next := mustCreate(t, s, newJob("ml", ""), t0); next.ID != 3 {
		t.Errorf("first ID after reopen: %d, want 3", next.ID)
	}
	if v, err := s.PutFleet(ctx(t), "doc-2", "admin", t0); err != nil || v != 2 {
		t.Errorf("fleet version after reopen: %d %v", v, err)
	}
}

func testLeader(t *testing.T, open func(t *testing.T) store.Store) {
	s := openClosed(t, open)
	l, ok := s.(store.Leader)
	if !ok {
		t.Skipf("%T does not implement store.Leader", s)
	}
	RunLeader(t, l)
}

// RunLeader checks a store.Leader: one holder at a time, renewals, and
// takeover once a lease has run out. l must hold no lease yet.
func RunLeader(t *testing.T, l store.Leader) {
	t.Helper()
	sec := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }
	steps := []struct {
		who      string
		now, end int
		want     bool
	}{
		{"a", 0, 10, true},  // first comer
		{"b", 1, 11, false}, // a holds it
		{"a", 5, 15, true},  // renewal
		{"b", 12, 22, false},
		{"b", 16, 26, true}, // a's lease ran out
		{"a", 17, 27, false},
		{"b", 20, 30, true},
	}
	for i, st := range steps {
		got, err := l.TryLead(ctx(t), st.who, sec(st.now), sec(st.end))
		if err != nil {
			t.Fatalf("step %d: TryLead(%s): %v", i, st.who, err)
		}
		if got != st.want {
			t.Errorf("step %d: TryLead(%s, now=%d, until=%d) = %v, want %v", i, st.who, st.now, st.end, got, st.want)
		}
	}
	// Many contenders for a free lease: one wins.
	const n = 8
	var won sync.WaitGroup
	wins := make([]bool, n)
	for i := range n {
		won.Go(func() {
			ok, err := l.TryLead(ctx(t), fmt.Sprintf("r%d", i), sec(100), sec(110))
			if err != nil {
				t.Errorf("contender %d: %v", i, err)
			}
			wins[i] = ok
		})
	}
	won.Wait()
	if c := countTrue(wins); c != 1 {
		t.Errorf("%d of %d contenders got the lease, want 1", c, n)
	}
}

func countTrue(bs []bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}
