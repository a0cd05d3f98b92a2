package control

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gpubroker/internal/backend"
	"gpubroker/internal/backend/local"
	"gpubroker/internal/store"
)

// runningAt stores j as running its first attempt, recorded at w.
func (e *testEnv) runningAt(j *store.Job, w backend.Where) {
	e.t.Helper()
	now := time.Now()
	pl := &store.Placement{Cluster: LocalCluster, Pool: LocalPool, GPU: "H100", GPUsPerNode: 1, Nodes: []int{0},
		Host: w.Host, Dir: w.Dir}
	for _, m := range []store.Move{
		{From: store.Pending, Attempt: 1, To: store.Admitted, Placement: pl, At: now},
		{From: store.Admitted, Attempt: 1, To: store.Dispatched, At: now},
		{From: store.Dispatched, Attempt: 1, To: store.Running, At: now},
	} {
		if _, errs, err := e.st.MoveJobs(e.t.Context(), []store.JobMove{{ID: j.ID, Move: m}}); err != nil || errs[0] != nil {
			e.t.Fatalf("%s -> %s: %v %v", m.From, m.To, err, errs)
		}
	}
}

// TestAdoptsAnotherBrokersAttempt: an attempt started by another broker on
// this machine (a leader that died; its processes run on) is observed in
// that broker's records, not declared lost for missing from this one's,
// and its end is recorded as it ended: it never runs twice.
func TestAdoptsAnotherBrokersAttempt(t *testing.T) {
	e := newStoppedEnv(t)
	ctx := context.Background()
	dead, err := local.New(filepath.Join(t.TempDir(), "dead-leader"), local.Options{GPUs: 4})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "runs")
	j := e.submitDirect(task(`"echo run >> ` + out + `; sleep 0.5"`))
	if err := dead.Submit(ctx, backend.Spec{Name: backend.Name(j.ID, 1), JobID: j.ID, Attempt: 1,
		Nodes: []backend.Node{{GPUs: []int{0}}}, Run: "echo run >> " + out + "; sleep 0.5"}); err != nil {
		t.Fatal(err)
	}
	e.runningAt(j, dead.Where())
	srv, err := New(e.config())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := srv.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
		got, err := e.st.GetJob(ctx, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Attempt != 1 || got.State == store.Failed {
			t.Fatalf("job %d: %s at attempt %d (%s); want attempt 1 adopted", j.ID, got.State, got.Attempt, got.Reason)
		}
		if got.State == store.Succeeded {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %d still %s after 10s", j.ID, got.State)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if data := readOut(t, out); strings.Count(data, "run") != 1 {
		t.Errorf("the job ran %d times, want once:\n%s", strings.Count(data, "run"), data)
	}
}

// TestAttemptOnAnotherHost: an attempt recorded on another machine is left
// running while a broker there beats, and lost once none does.
func TestAttemptOnAnotherHost(t *testing.T) {
	e := newStoppedEnv(t)
	ctx := context.Background()
	cfg := e.config()
	cfg.Host = "here"
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	j := e.submitDirect(task("true"))
	e.runningAt(j, backend.Where{Host: "gpu-box-7", Dir: "/var/lib/gpubroker/local/local"})
	if err := e.st.Beat(ctx, "other", "gpu-box-7", time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	for range lostAfterRounds + 2 {
		if err := srv.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
	}
	got, err := e.st.GetJob(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != store.Running || got.Attempt != 1 {
		t.Fatalf("job %d: %s at attempt %d (%s) while its host's broker beats; want RUNNING at attempt 1",
			j.ID, got.State, got.Attempt, got.Reason)
	}
	if err := e.st.Beat(ctx, "other", "gpu-box-7", time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := srv.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err = e.st.GetJob(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	if got.Attempt != 2 || !strings.Contains(got.Reason, "host gpu-box-7 has no live broker") {
		t.Errorf("job %d: %s at attempt %d (%s) once its host's broker is gone; want lost and retried",
			j.ID, got.State, got.Attempt, got.Reason)
	}
}

// TestFencedRoundActsNot: a round that outlasted its lease writes nothing.
func TestFencedRoundActsNot(t *testing.T) {
	e := newStoppedEnv(t)
	srv, err := New(e.config())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	j := e.submitDirect(task("true"))
	now := time.Now()
	rd := &round{s: srv, now: now, until: now.Add(-time.Millisecond), jobs: map[int64]*store.Job{j.ID: j}, order: []int64{j.ID}}
	rd.plan(j, store.Move{To: store.Cancelled, Reason: "test"}, nil)
	rd.flush(ctx)
	got, err := e.st.GetJob(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != store.Pending {
		t.Errorf("a fenced round moved job %d to %s", j.ID, got.State)
	}
	rd.until = now.Add(time.Minute)
	rd.plan(j, store.Move{To: store.Cancelled, Reason: "test"}, nil)
	rd.flush(ctx)
	if got, _ = e.st.GetJob(ctx, j.ID); got.State != store.Cancelled {
		t.Errorf("a leading round did not move job %d: %s", j.ID, got.State)
	}
}

func readOut(t *testing.T, name string) string {
	t.Helper()
	data, _ := os.ReadFile(name)
	return string(data)
}
