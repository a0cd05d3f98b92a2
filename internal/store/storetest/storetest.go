// Package storetest is the conformance suite every store.Store driver
// passes (store/sqlite, store/postgres). A driver's test calls Run with a
// function that opens a fresh, empty store for one test.
//
// Test code only: production code never imports this package.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"gpubroker/internal/model"
	"gpubroker/internal/store"
)

// Run runs the suite. open must return a store over data of its own for
// each test t: empty the first time it is called with t, and over the same
// data when called again with the same t (the suite closes the first store
// before it reopens, to check that data survives). The suite closes every
// store it opens; Close must therefore be safe to call twice. Subtests run
// in parallel.
//
// When the store also implements store.Leader, the Leader test runs too.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open func(t *testing.T) store.Store)
	}{
		{"CreateIDs", testCreateIDs},
		{"CreateKey", testCreateKey},
		{"CreateInvalid", testCreateInvalid},
		{"RoundTrip", testRoundTrip},
		{"List", testList},
		{"After", testAfter},
		{"MoveLifecycle", testMoveLifecycle},
		{"MoveErrors", testMoveErrors},
		{"MoveBatch", testMoveBatch},
		{"Changes", testChanges},
		{"ChangesConcurrent", testChangesConcurrent},
		{"Terminal", testTerminal},
		{"ConcurrentMove", testConcurrentMove},
		{"ConcurrentCreate", testConcurrentCreate},
		{"CountByState", testCountByState},
		{"Fleet", testFleet},
		{"Tokens", testTokens},
		{"Usage", testUsage},
		{"Reopen", testReopen},
		{"Leader", testLeader},
		{"Attempts", testAttempts},
		{"AttemptsBatch", testAttemptsBatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open)
		})
	}
}

// t0 has a nanosecond part and a zone other than UTC on purpose: stores
// must keep the instant exactly.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.FixedZone("CET", 3600))

func ctx(t *testing.T) context.Context { return t.Context() }

func openClosed(t *testing.T, open func(t *testing.T) store.Store) store.Store {
	t.Helper()
	s := open(t)
	t.Cleanup(func() { s.Close() })
	return s
}

// Workload is a workload with every kind of field set, for round trips.
func Workload(name string) *model.Workload {
	return &model.Workload{
		ID:       "w-" + name,
		Name:     name,
		Kind:     model.Job,
		Team:     "ml",
		Priority: 5,
		NumNodes: 2,
		Options: []model.Resources{
			{GPU: "H100", GPUsPerNode: 8, Provider: "aws", Region: "us-east-1", UseSpot: true,
				CPUs: 96, CPUsAtLeast: true, MemoryGiB: 1024.5, MaxHourlyCost: 98.25, DiskSizeGiB: 500,
				AcceleratorArg: "H100:8"},
			{GPU: "A100-80GB", GPUsPerNode: 8, AllowSpot: true, Zone: "b"},
		},
		Order:              model.Ordered,
		Envs:               map[string]string{"LR": "3e-4", "EMPTY": "", "UNICODE": "größe ✓"},
		Setup:              "pip install -r requirements.txt\n",
		Run:                "torchrun --nnodes=$NUM_NODES train.py 'quoted' \"double\"\n",
		Workdir:            "/work",
		FileMounts:         map[string]string{"/data": "s3://bucket/data"},
		Recovery:           model.Recovery{Strategy: "failover", MaxRestartsOnErrors: 3},
		Service:            &model.ServiceSpec{MinReplicas: 1, MaxReplicas: 4, ReadinessPath: "/health", Port: 8080},
		Deadline:           t0.Add(48 * time.Hour),
		CheckpointDir:      "/ckpt",
		CheckpointInterval: 30 * time.Minute,
		DataRegion:         "us-east-1",
		DataGB:             1234.5,
		Duration:           90*time.Minute + 7*time.Nanosecond,
		Submitted:          t0.Add(-time.Second),
	}
}

func newJob(team, key string) *store.Job {
	return &store.Job{Team: team, User: "alice", Key: key, Workload: Workload("job"), Spec: "name: job\n"}
}

func mustCreate(t *testing.T, s store.Store, j *store.Job, at time.Time) *store.Job {
	t.Helper()
	got, err := s.CreateJob(ctx(t), j, at)
	if err != nil {
		t.Fatalf("CreateJob: %v", err)
	}
	return got
}

func mustMove(t *testing.T, s store.Store, id int64, m store.Move) *store.Job {
	t.Helper()
	got, err := s.MoveJob(ctx(t), id, m)
	if err != nil {
		t.Fatalf("MoveJob(%d, %s -> %s): %v", id, m.From, m.To, err)
	}
	return got
}

func wantErr(t *testing.T, what string, err, kind error) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Errorf("%s: got error %v, want %v", what, err, kind)
	}
}

func testCreateIDs(t *testing.T, open func(t *testing.T) store.Store) {
	s := openClosed(t, open)
	for i := int64(1); i <= 3; i++ {
		at := t0.Add(time.Duration(i) * time.Second)
		j := newJob("ml", "")
		j.State, j.Attempt = store.Running, 7 // ignored: a new job is Pending at attempt 1
		got := mustCreate(t, s, j, at)
		want := &store.Job{ID: i, Team: "ml", User: "alice", Workload: Workload("job"), Spec: "name: job\n",
			State: store.Pending, Attempt: 1, Created: at, Updated: at}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("CreateJob #%d (-want +got):\n%s", i, d)
		}
		ev, err := s.Events(ctx(t), i)
		if err != nil {
			t.Fatalf("Events: %v", err)
		}
		if len(ev) != 1 || ev[0].Seq != 1 || ev[0].JobID != i || ev[0].From != "" || ev[0].To != store.Pending ||
			ev[0].Attempt != 1 || !ev[0].At.Equal(at) {
			t.Errorf("creation events of job %d: %+v", i, ev)
		}
	}
}

func testCreateKey(t *testing.T, open func(t *testing.T) store.Store) {
	s := openClosed(t, open)
	first := mustCreate(t, s, newJob("ml", "k1"), t0)
	if first.ID != 1 || first.Key != "k1" {
		t.Fatalf("first job: id %d key %q", first.ID, first.Key)
	}
	again := newJob("other-team", "k1")
	got, err := s.CreateJob(ctx(t), again, t0.Add(time.Minute))
	wantErr(t, "CreateJob with a used key", err, store.ErrConflict)
	if got == nil {
		t.Fatal("CreateJob with a used key returned no job")
	}
	if d := cmp.Diff(first, got); d != "" {
		t.Errorf("CreateJob with a used key returned (-first +got):\n%s", d)
	}
	// The conflict used up no ID.
	if j := mustCreate(t, s, newJob("ml", "k2"), t0); j.ID != 2 {
		t.Errorf("next job after a key conflict: id %d, want 2", j.ID)
	}
	if j := mustCreate(t, s, newJob("ml", ""), t0); j.ID != 3 {
		t.Errorf("job without key: id %d, want 3", j.ID)
	}
	if j := mustCreate(t, s, newJob("ml", ""), t0); j.ID != 4 {
		t.Errorf("second job without key: id %d, want 4 (an empty key is no key)", j.ID)
	}
}

func testCreateInvalid(t *testing.T, open func(t *testing.T) store.Store) {
	s := openClosed(t, open)
	_, err := s.CreateJob(ctx(t), &store.Job{User: "a", Workload: Workload("x")}, t0)
	wantErr(t, "CreateJob without team", err, store.ErrInvalid)
	_, err = s.CreateJob(ctx(t), &store.Job{Team: "ml", User: "a"}, t0)
	wantErr(t, "CreateJob without workload", err, store.ErrInvalid)
	_, err = s.GetJob(ctx(t), 1)
	wantErr(t, "GetJob after failed creates", err, store.ErrNotFound)
	_, err = s.Events(ctx(t), 1)
	wantErr(t, "Events of a missing job", err, store.ErrNotFound)
	_, err = s.ListJobs(ctx(t), store.Filter{States: []store.State{"BOGUS"}})
	wantErr(t, "ListJobs with an unknown state", err, store.ErrInvalid)
}

func testRoundTrip(t *testing.T, open func(t *testing.T) store.Store) {
	s := openClosed(t, open)
	j := newJob("ml", "idem-1")
	j.Spec = "name: x\nrun: |\n  echo 'hi'\n"
	created := mustCreate(t, s, j, t0)
	got, err := s.GetJob(ctx(t), created.ID)
	if err != nil {
		t.Fatalf("GetJob: %v", err)
	}
	if d := cmp.Diff(created, got); d != "" {
		t.Errorf("GetJob after CreateJob (-created +got):\n%s", d)
	}
	if d := cmp.Diff(Workload("job"), got.Workload); d != "" {
		t.Errorf("workload round trip (-want +got):\n%s", d)
	}
	if got.Created.Location() != time.UTC {
		t.Errorf("Created is in %v; stores return UTC", got.Created.Location())
	}

	p := &store.Placement{Cluster: "aws-use1", Pool: "p5-spot", Provider: "aws", Region: "us-east-1",
		GPU: "H100", GPUsPerNode: 8, Nodes: []int{0, 3}, PriceClass: model.Spot,
		BilledPerGPUHour: 2.125, Contract: "c1", Borrowed: true}
	moved := mustMove(t, s, created.ID, store.Move{From: store.Pending, Attempt: 1, To: store.Admitted,
		Placement: p, Reason: "cheapest", Actor: "reconciler", At: t0.Add(time.Second)})
	got, err = s.GetJob(ctx(t), created.ID)
	if err != nil {
		t.Fatalf("GetJob: %v", err)
	}
	if d := cmp.Diff(moved, got); d != "" {
		t.Errorf("GetJob after MoveJob (-moved +got):\n%s", d)
	}
	if d := cmp.Diff(p, got.Placement); d != "" {
		t.Errorf("placement round trip (-want +got):\n%s", d)
	}

	// Listing gives the jobs GetJob gives, whether the driver reads a
	// job's workload and spec afresh (the second job, listed before any
	// read of it) or has them from an earlier read (the first).
	other := newJob("ml", "")
	other.Spec = "name: other\n"
	other = mustCreate(t, s, other, t0)
	for pass := range 2 {
		list, err := s.ListJobs(ctx(t), store.Filter{})
		if err != nil || len(list) != 2 {
			t.Fatalf("ListJobs, pass %d: %d jobs, %v; want 2", pass, len(list), err)
		}
		for _, l := range list {
			want, err := s.GetJob(ctx(t), l.ID)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(want, l); d != "" {
				t.Errorf("ListJobs, pass %d, job %d against GetJob (-get +list):\n%s", pass, l.ID, d)
			}
		}
	}
}

func testList(t *testing.T, open func(t *testing.T) store.Store) {
	s := openClosed(t, open)
	teams := []string{"a", "b", "a", "c", "a", "b"}
	for _, team := range teams {
		mustCreate(t, s, newJob(team, ""), t0)
	}
	mustMove(t, s, 2, store.Move{From: store.Pending, Attempt: 1, To: store.Admitted, At: t0})
	mustMove(t, s, 3, store.Move{From: store.Pending, Attempt: 1, To: store.Cancelled, At: t0})
	mustMove(t, s, 5, store.Move{From: store.Pending, Attempt: 1, To: store.Admitted, At: t0})

	ids := func(js []*store.Job) []int64 {
		out := []int64{}
		for _, j := range js {
			out = append(out, j.ID)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		f    store.Filter
		want []int64
	}{
		{"all", store.Filter{}, []int64{1, 2, 3, 4, 5, 6}},
		{"team", store.Filter{Team: "a"}, []int64{1, 3, 5}},
		{"state", store.Filter{States: []store.State{store.Admitted}}, []int64{2, 5}},
		{"states", store.Filter{States: []store.State{store.Admitted, store.Cancelled}}, []int64{2, 3, 5}},
		{"team and state", store.Filter{Team: "a", States: []store.State{store.Pending}}, []int64{1}},
		{"after", store.Filter{AfterID: 4}, []int64{5, 6}},
		{"limit", store.Filter{Limit: 2}, []int64{1, 2}},
		{"after and limit", store.Filter{AfterID: 1, Limit: 3, Team: "a"}, []int64{3, 5}},
		{"none", store.Filter{Team: "zzz"}, []int64{}},
	} {
		got, err := s.ListJobs(ctx(t), tc.f)
		if err != nil {
			t.Fatalf("%s: ListJobs: %v", tc.name, err)
		}
		if d := cmp.Diff(tc.want, ids(got)); d != "" {
			t.Errorf("%s: ListJobs ids (-want +got):\n%s", tc.name, d)
		}
	}
	// Paging visits every job once.
	var all []int64
	f := store.Filter{Limit: 4}
	for {
		page, err := s.ListJobs(ctx(t), f)
		if err != nil {
			t.Fatalf("ListJobs page: %v", err)
		}
		if len(page) == 0 {
			break
		}
		all = append(all, ids(page)...)
		f.AfterID = page[len(page)-1].ID
	}
	if d := cmp.Diff([]int64{1, 2, 3, 4, 5, 6}, all); d != "" {
		t.Errorf("paging (-want +got):\n%s", d)
	}
	// Listed jobs are whole jobs.
	one, err := s.ListJobs(ctx(t), store.Filter{AfterID: 1, Limit: 1})
	if err != nil || len(one) != 1 {
		t.Fatalf("ListJobs: %v %v", one, err)
	}
	got, err := s.GetJob(ctx(t), 2)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(got, one[0]); d != "" {
		t.Errorf("listed job differs from GetJob (-get +list):\n%s", d)
	}
}

// testAfter: the job a pipeline stage waits for is kept, survives moves
// and listing, and must name an existing job.
func testAfter(t *testing.T, open func(t *testing.T) store.Store) {
	s := openClosed(t, open)
	first := mustCreate(t, s, newJob("ml", ""), t0)
	if first.After != 0 {
		t.Errorf("a job created without After has After %d", first.After)
	}
	second := newJob("ml", "stage-2")
	second.After = first.ID
	j2 := mustCreate(t, s, second, t0)
	third := newJob("ml", "")
	third.After = j2.ID
	j3 := mustCreate(t, s, third, t0)
	want := &store.Job{ID: 2, Key: "stage-2", After: 1, Team: "ml", User: "alice", Workload: Workload("job"),
		Spec: "name: job\n", State: store.Pending, Attempt: 1, Created: t0, Updated: t0}
	if d := cmp.Diff(want, j2); d != "" {
		t.Errorf("CreateJob with After (-want +got):\n%s", d)
	}
	if got, err := s.GetJob(ctx(t), j2.ID); err != nil {
		t.Fatal(err)
	} else if d := cmp.Diff(j2, got); d != "" {
		t.Errorf("GetJob of a job with After (-created +got):\n%s", d)
	}
	// A key conflict answers with the stored job, its After included.
	again := newJob("ml", "stage-2")
	again.After = j3.ID
	got, err := s.CreateJob(ctx(t), again, t0)
	wantErr(t, "CreateJob with a used key", err, store.ErrConflict)
	if got == nil || got.After != first.ID {
		t.Errorf("CreateJob with a used key answered %+v; want job 2 waiting for job 1", got)
	}
	// Moves keep it.
	moved := mustMove(t, s, j3.ID, store.Move{From: store.Pending, Attempt: 1, To: store.Cancelled,
		Reason: "job 2 ended FAILED", Actor: "reconciler", At: t0.Add(time.Second)})
	if moved.After != j2.ID {
		t.Errorf("after a move, After is %d; want %d", moved.After, j2.ID)
	}
	list, err := s.ListJobs(ctx(t), store.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var afters []int64
	for _, j := range list {
		afters = append(afters, j.After)
	}
	if d := cmp.Diff([]int64{0, 1, 2}, afters); d != "" {
		t.Errorf("After of listed jobs (-want +got):\n%s", d)
	}
	// After must name a job that exists; a refused create uses up no ID.
	for _, after := range []int64{99, -1} {
		bad := newJob("ml", "")
		bad.After = after
		_, err := s.CreateJob(ctx(t), bad, t0)
		wantErr(t, fmt.Sprintf("CreateJob with After %d", after), err, store.ErrInvalid)
	}
	if j := mustCreate(t, s, newJob("ml", ""), t0); j.ID != 4 {
		t.Errorf("next job after refused creates: id %d, want 4", j.ID)
	}
}

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

func testConcurrentCreate(t *testing.T, open func(t *testing.T) store.Store) {
	s := openClosed(t, open)
	const workers, each = 8, 50
	ids := make([][]int64, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				key := ""
				if i%5 == 0 {
					key = fmt.Sprintf("w%d-%d", w, i)
				}
				j, err := s.CreateJob(ctx(t), newJob("ml", key), t0)
				if err != nil {
					t.Errorf("worker %d: CreateJob: %v", w, err)
					return
				}
				ids[w] = append(ids[w], j.ID)
			}
		})
	}
	wg.Wait()
	var all []int64
	for w, got := range ids {
		if !slices.IsSorted(got) {
			t.Errorf("worker %d saw IDs out of order: %v", w, got)
		}
		all = append(all, got...)
	}
	slices.Sort(all)
	want := make([]int64, workers*each)
	for i := range want {
		want[i] = int64(i + 1)
	}
	if d := cmp.Diff(want, all); d != "" {
		t.Errorf("IDs of concurrent creates are not 1..%d (-want +got):\n%s", len(want), d)
	}
}

func testCountByState(t *testing.T, open func(t *testing.T) store.Store) {
	s := openClosed(t, open)
	want := map[store.State]int{store.Pending: 0, store.Admitted: 0, store.Dispatched: 0, store.Running: 0,
		store.Succeeded: 0, store.Failed: 0, store.Cancelled: 0}
	got, err := s.CountByState(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("CountByState of an empty store (-want +got):\n%s", d)
	}
	for range 5 {
		mustCreate(t, s, newJob("ml", ""), t0)
	}
	mustMove(t, s, 1, store.Move{From: store.Pending, Attempt: 1, To: store.Admitted, At: t0})
	mustMove(t, s, 2, store.Move{From: store.Pending, Attempt: 1, To: store.Admitted, At: t0})
	mustMove(t, s, 2, store.Move{From: store.Admitted, Attempt: 1, To: store.Dispatched, At: t0})
	mustMove(t, s, 3, store.Move{From: store.Pending, Attempt: 1, To: store.Cancelled, At: t0})
	want[store.Pending], want[store.Admitted], want[store.Dispatched], want[store.Cancelled] = 2, 1, 1, 1
	got, err = s.CountByState(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("CountByState (-want +got):\n%s", d)
	}
}

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
