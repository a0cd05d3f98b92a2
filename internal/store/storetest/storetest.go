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
		{"TokenLife", testTokenLife},
		{"SharedKey", testSharedKey},
		{"Usage", testUsage},
		{"Reopen", testReopen},
		{"Leader", testLeader},
		{"Members", testMembers},
		{"Attempts", testAttempts},
		{"AttemptsBatch", testAttemptsBatch},
		{"Identity", testIdentity},
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
