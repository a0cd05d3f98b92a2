package server

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"gpubroker/internal/backend"
	"gpubroker/internal/store"
)

// With a round interval of an hour, a submission still runs at once: the
// API wakes the reconciler, and while attempts are in flight on a backend
// that cannot signal changes (local) rounds come every pollInFlight. Eight
// jobs on four GPUs take two waves, all dispatched and recorded.
func TestRoundsFollowSubmissionsAndInFlightWork(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, func(c *Config) { c.RoundInterval = time.Hour })
	// The first round ran when the server opened; the next one is an hour
	// away unless something wakes it.
	var ids []int64
	for range 8 {
		ids = append(ids, e.submit(e.admin, "resources:\n  accelerators: H100:1\nrun: sleep 0.2\n")[0].ID)
	}
	for _, id := range ids {
		j := e.waitState(id, 10*time.Second, store.Succeeded, store.Failed)
		if j.State != store.Succeeded {
			t.Errorf("job %d: %s %q", id, j.State, j.Reason)
		}
	}
}

// heldSubmit holds the first Submit it sees until release is closed; the
// others go straight through.
type heldSubmit struct {
	backend.Backend
	once     sync.Once
	entered  chan struct{} // closed when the held Submit arrives
	release  chan struct{}
	returned chan struct{} // closed when the held Submit has returned
}

func (h *heldSubmit) Submit(ctx context.Context, spec backend.Spec) error {
	held := false
	h.once.Do(func() { held = true; close(h.entered) })
	if !held {
		return h.Backend.Submit(ctx, spec)
	}
	defer close(h.returned)
	select {
	case <-h.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return h.Backend.Submit(ctx, spec)
}

// No round waits for a Submit: while one job's Submit hangs, later jobs are
// admitted, dispatched and run. A job cancelled while its Submit is out
// is not recorded dispatched when the Submit returns, and what the Submit
// started is stopped as an orphan.
func TestRoundsDoNotWaitForSubmits(t *testing.T) {
	t.Parallel()
	h := &heldSubmit{entered: make(chan struct{}), release: make(chan struct{}), returned: make(chan struct{})}
	e := newTestEnv(t, wrapBackend(h, func(b backend.Backend) { h.Backend = b }))
	released := false
	defer func() {
		if !released {
			close(h.release)
		}
	}()
	held := e.submit(e.admin, task("exec sleep 60"))[0].ID
	select {
	case <-h.entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the first job's Submit never came")
	}
	later := e.submit(e.admin, task("true"))[0].ID
	if j := e.waitState(later, 20*time.Second, store.Succeeded, store.Failed); j.State != store.Succeeded {
		t.Fatalf("a job submitted after the held one: %s %q", j.State, j.Reason)
	}
	if j := e.job(held); j.State != store.Admitted {
		t.Fatalf("the held job is %s while its Submit hangs, want admitted", j.State)
	}
	var j store.Job
	e.mustDo(http.StatusOK, "POST", fmt.Sprintf("/v1/jobs/%d/cancel", held), e.admin, nil, &j)
	close(h.release)
	released = true
	select {
	case <-h.returned:
	case <-time.After(20 * time.Second):
		t.Fatal("the held Submit never returned")
	}
	// Whatever the late Submit started (the backend may start nothing for
	// a name already cancelled), the next rounds find it orphaned and stop
	// it.
	deadline := time.Now().Add(20 * time.Second)
	for {
		sts, err := e.be.Observe(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		alive := false
		for _, st := range sts {
			if strings.HasPrefix(st.Name, fmt.Sprintf("gpub-%d-", held)) &&
				(st.Phase == backend.PhasePending || st.Phase == backend.PhaseRunning) {
				alive = true
			}
		}
		if !alive {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the cancelled job's attempt still runs after its late Submit")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if j := e.job(held); j.State != store.Cancelled {
		t.Errorf("the cancelled job is %s after its Submit returned", j.State)
	}
	for _, s := range transitions(e.events(held)) {
		if strings.Contains(s, string(store.Dispatched)) {
			t.Errorf("the cancelled job's history %v records a dispatch", transitions(e.events(held)))
			break
		}
	}
}
