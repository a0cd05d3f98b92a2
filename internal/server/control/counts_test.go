package control

import (
	"context"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"gpubroker/internal/store"
)

// TestQueueDepthFollowsTheStore: the queue-depth metric, counted from the
// rounds between reads of the store's counts, is the store's count of
// every state after jobs ended by the backend, by the API and by someone
// else moving a job in the store.
func TestQueueDepthFollowsTheStore(t *testing.T) {
	t.Parallel()
	e := newStoppedEnv(t)
	c, err := New(e.config())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var quick []*store.Job
	for range 3 {
		quick = append(quick, e.submitDirect(task("true")))
	}
	sleeper := e.submitDirect(task("sleep 30"))
	other := e.submitDirect(task("true"))
	round := func() {
		t.Helper()
		if err := c.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
	}
	waitState := func(id int64, want store.State) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			round()
			j, err := e.st.GetJob(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if j.State == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("job %d is %s, want %s", id, j.State, want)
			}
		}
	}
	round() // reads the counts once
	for _, j := range quick {
		waitState(j.ID, store.Succeeded)
	}
	waitState(sleeper.ID, store.Running)
	j, err := e.st.GetJob(ctx, sleeper.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Cancel(ctx, j, "test"); err != nil {
		t.Fatal(err)
	}
	o, err := e.st.GetJob(ctx, other.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !o.State.Terminal() {
		if _, err := e.st.MoveJob(ctx, o.ID, store.Move{From: o.State, Attempt: o.Attempt, To: store.Failed, Actor: "someone else"}); err != nil {
			t.Fatal(err)
		}
	}
	round()
	round()
	want, err := e.st.CountByState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for st, n := range want {
		var m dto.Metric
		if err := c.metrics.queueDepth.WithLabelValues(string(st)).Write(&m); err != nil {
			t.Fatal(err)
		}
		if got := m.GetGauge().GetValue(); int(got) != n {
			t.Errorf("queue depth %s = %v, the store counts %d", st, got, n)
		}
	}
	if c.rec.counts.read.IsZero() || len(c.rec.counts.ended) == 0 {
		t.Errorf("the counts were read again every round, or kept nothing: %+v", c.rec.counts)
	}
}
